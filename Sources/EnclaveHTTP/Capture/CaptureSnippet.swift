/// The website snippet, served at `/v1/capture/snippet/<public key>.js`: the same bytes for every
/// property (it reads its key from its own URL), so browsers and CDNs may cache it. It holds no
/// secret and sends nothing but the landing path and the allowlisted campaign parameters of the
/// page's URL; any other parameter (a URL can carry PHI) never leaves the browser.
enum CaptureSnippet {
    static let source = #"""
        (function () {
          "use strict";
          var script = document.currentScript;
          if (!script || !window.fetch) { return; }
          var src = new URL(script.src);
          var match = /\/v1\/capture\/snippet\/(pk_[A-Za-z0-9_-]{20,64})\.js$/.exec(src.pathname);
          if (!match) { return; }
          var base = src.origin + "/v1/capture/web/" + match[1];
          var KEEP = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
                      "gclid", "gbraid", "wbraid", "msclkid", "fbclid"];
          var COOKIE = "enclave_visitor";
          var shownAt = Date.now();

          function readCookie() {
            var found = document.cookie.split("; ").filter(function (c) { return c.indexOf(COOKIE + "=") === 0; })[0];
            return found ? found.slice(COOKIE.length + 1) : undefined;
          }
          function writeCookie(token) {
            var secure = location.protocol === "https:" ? "; Secure" : "";
            document.cookie = COOKIE + "=" + token + "; Max-Age=1800; Path=/; SameSite=Lax" + secure;
          }
          function post(path, body) {
            return fetch(base + path, {
              method: "POST", mode: "cors", credentials: "omit", keepalive: true,
              headers: { "Content-Type": "text/plain" }, body: JSON.stringify(body)
            });
          }
          function digits(number) { return (number || "").replace(/\D/g, ""); }
          function display(e164) {
            var d = digits(e164);
            if (d.length === 11 && d[0] === "1") { return "(" + d.slice(1, 4) + ") " + d.slice(4, 7) + "-" + d.slice(7); }
            return e164;
          }
          function swap(number, main) {
            var marked = document.querySelectorAll("[data-enclave-number]");
            Array.prototype.forEach.call(marked, function (el) {
              el.textContent = display(number);
              if (el.tagName === "A") { el.setAttribute("href", "tel:" + number); }
            });
            if (!main) { return; }
            var wanted = digits(main).slice(-10);
            Array.prototype.forEach.call(document.querySelectorAll("a[href^='tel:']"), function (a) {
              if (digits(a.getAttribute("href")).slice(-10) === wanted) {
                a.setAttribute("href", "tel:" + number);
                if (digits(a.textContent).slice(-10) === wanted) { a.textContent = display(number); }
              }
            });
          }

          var params = {};
          var query = new URLSearchParams(location.search);
          KEEP.forEach(function (name) {
            var value = query.get(name);
            if (value) { params[name] = value.slice(0, 200); }
          });
          post("/views", { session: readCookie(), path: location.pathname.slice(0, 500), params: params })
            .then(function (response) { return response.ok ? response.json() : null; })
            .then(function (answer) {
              if (!answer) { return; }
              writeCookie(answer.session);
              if (answer.number) { swap(answer.number, answer.main_number); }
            })
            .catch(function () {});

          document.addEventListener("submit", function (event) {
            var form = event.target;
            if (!form || !form.hasAttribute || !form.hasAttribute("data-enclave-form")) { return; }
            event.preventDefault();
            var fields = {};
            var honeypot = "";
            Array.prototype.forEach.call(form.elements, function (el) {
              if (!el.name || el.type === "submit" || el.type === "button" || el.type === "file") { return; }
              if ((el.type === "checkbox" || el.type === "radio") && !el.checked) { return; }
              if (el.hasAttribute("data-enclave-honeypot")) { honeypot = el.value; return; }
              fields[el.name] = el.value;
            });
            post("/forms", {
              session: readCookie(), fields: fields, honeypot: honeypot, elapsed_ms: Date.now() - shownAt,
              page: location.origin + location.pathname
            }).then(function (response) {
              form.setAttribute("data-enclave-sent", response.ok ? "yes" : "no");
              form.dispatchEvent(new CustomEvent("enclave:sent", { detail: { ok: response.ok } }));
            }).catch(function () { form.setAttribute("data-enclave-sent", "no"); });
          }, true);
        })();
        """#
}
