#ifndef ENCLAVE_CLIBPQ_SHIM_H
#define ENCLAVE_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
