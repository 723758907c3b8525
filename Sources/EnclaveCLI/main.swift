print("enclave")
