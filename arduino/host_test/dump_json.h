// Small JSON writing helpers for the host tools' dumps (read by tests/test_arduino*.py).
#ifndef TFLM_KWS_HOST_TEST_DUMP_JSON_H_
#define TFLM_KWS_HOST_TEST_DUMP_JSON_H_

#include <cstdio>
#include <string>

template <typename T>
void WriteJsonArray(FILE* out, const char* key, const T* values, int count) {
  fprintf(out, "\"%s\": [", key);
  for (int i = 0; i < count; ++i) fprintf(out, i ? ", %d" : "%d", static_cast<int>(values[i]));
  fprintf(out, "]");
}

inline std::string BaseName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

#endif  // TFLM_KWS_HOST_TEST_DUMP_JSON_H_
