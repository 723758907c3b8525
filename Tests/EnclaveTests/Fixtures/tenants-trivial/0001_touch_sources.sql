update enclave.tracking_sources set label = label;
