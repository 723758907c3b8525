#ifndef ENCLAVE_CPOCKETSPHINX_SHIM_H
#define ENCLAVE_CPOCKETSPHINX_SHIM_H
#include <stdio.h>
#include <pocketsphinx.h>
#include <sphinxbase/err.h>

/// A decoder for `samprate` Hz audio with the given model files, or NULL. cmd_ln_init is
/// variadic, which Swift cannot call. The library's log goes nowhere: it prints hypotheses,
/// which are PHI.
static inline ps_decoder_t *enclave_ps_open(const char *hmm, const char *lm, const char *dict, const char *samprate) {
    err_set_logfp(NULL);
    cmd_ln_t *config = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", hmm, "-lm", lm, "-dict", dict,
                                   "-samprate", samprate, "-logfn", "/dev/null", NULL);
    if (config == NULL) {
        return NULL;
    }
    ps_decoder_t *decoder = ps_init(config);
    cmd_ln_free_r(config);
    return decoder;
}
#endif
