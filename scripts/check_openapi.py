"""Checks the spec and recorded responses; see scripts/check-openapi."""

import json
import re
import sys

import jsonschema
import yaml
from openapi_spec_validator import validate

spec_path, exchanges_path = sys.argv[1], sys.argv[2]
with open(spec_path) as f:
    spec = yaml.safe_load(f)
validate(spec)
print(f"check-openapi: {spec_path} is a valid OpenAPI {spec['openapi']} document")


def resolve(node):
    """Inlines every local $ref (the spec has no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return resolve(target)
        return {key: resolve(value) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(value) for value in node]
    return node


routes = []
for template, item in spec["paths"].items():
    pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
    routes.append((re.compile(pattern), template, resolve(item)))
problem_schema = resolve(spec["components"]["schemas"]["Problem"])


def media_matches(declared, actual):
    declared_type, actual_type = declared.split("/"), actual.split("/")
    return declared_type[0] == actual_type[0] and declared_type[1] in ("*", actual_type[1])


def check(exchange):
    method, path, status = exchange["method"].lower(), exchange["path"], exchange["status"]
    path_only = path.split("?")[0]
    media = (exchange.get("content_type") or "").split(";")[0].strip().lower()
    headers = {k.lower(): v for k, v in exchange.get("headers", {}).items()}
    body = exchange.get("body")
    matches = [(template, item) for pattern, template, item in routes if pattern.match(path_only)]
    # Literal segments win over parameters, as in the router.
    matches.sort(key=lambda m: m[0].count("{"))
    operation = next((item[method] for _, item in matches if method in item), None)
    if operation is None:
        if status not in (404, 405):
            return f"{method.upper()} {path}: not in the spec, answered {status} (expected 404)"
        responses = {str(status): {"content": {"application/problem+json": {"schema": problem_schema}}}}
    else:
        responses = operation["responses"]
    response = responses.get(str(status)) or responses.get("default")
    if response is None:
        return f"{method.upper()} {path}: status {status} is not declared ({sorted(responses)})"
    content = response.get("content")
    if not content:
        if body:
            return f"{method.upper()} {path}: {status} declares no body but got one"
        return None
    declared = next((d for d in content if media_matches(d, media)), None) if media else None
    if declared is None:
        return f"{method.upper()} {path}: {status} content type {media!r} is not declared ({list(content)})"
    for name, header in response.get("headers", {}).items():
        if header.get("required") and name.lower() not in headers:
            return f"{method.upper()} {path}: {status} lacks the required header {name}"
    schema = content[declared].get("schema", {})
    if declared.endswith("json"):
        try:
            value = json.loads(body)
        except (TypeError, ValueError):
            return f"{method.upper()} {path}: {status} body is not JSON"
        try:
            jsonschema.validate(
                value, schema, cls=jsonschema.Draft202012Validator,
                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        except jsonschema.ValidationError as error:
            where = "/".join(str(p) for p in error.absolute_path)
            return f"{method.upper()} {path}: {status} body does not conform at '{where}': {error.message[:200]}"
    return None


failures, count, operations = [], 0, set()
try:
    with open(exchanges_path) as f:
        for line in f:
            if not line.strip():
                continue
            exchange = json.loads(line)
            count += 1
            failure = check(exchange)
            if failure:
                failures.append(failure)
except FileNotFoundError:
    sys.exit(f"check-openapi: {exchanges_path} not found (the HTTP tests record it when ENCLAVE_HTTP_EXCHANGES is set)")
for failure in sorted(set(failures)):
    print("check-openapi: " + failure, file=sys.stderr)
if failures:
    sys.exit(f"check-openapi: {len(failures)} of {count} recorded responses do not conform to the spec")
if count == 0:
    sys.exit("check-openapi: no exchanges were recorded")
print(f"check-openapi: all {count} recorded responses conform to the spec")
