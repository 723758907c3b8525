update enclave.tracking_sources set label = label /* test: a per-tenant migration */;
