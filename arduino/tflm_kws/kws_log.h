// Logging for the sketch's portable files. On the board and in the TFLM host test it goes through
// TFLM's MicroPrintf (kws_log.cpp); builds without TFLM (the CI feature/recognizer tests) link a
// stdio version instead (host_test/kws_log_stdio.cpp).
#ifndef TFLM_KWS_KWS_LOG_H_
#define TFLM_KWS_KWS_LOG_H_

// printf-style; keep to %d, %u, %s, %c (MicroPrintf's subset) so messages look the same everywhere.
void KwsLog(const char* format, ...);

#endif  // TFLM_KWS_KWS_LOG_H_
