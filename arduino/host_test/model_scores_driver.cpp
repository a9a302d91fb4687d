// Drives the sketch's model_scores.cpp (no TFLM) from stdin, one request per line:
//   table <input_scale> <input_zero_point>          -> the 256 int8 model inputs, v = -128..127
//   scores <output_scale> <output_zero_point> <0|1 probability> <kCategoryCount raw int8 values>
//                                                   -> kCategoryCount scores (0..255)
// A malformed line prints "error" and the driver exits 2.
#include <cstdio>
#include <cstring>

#include "model_data.h"
#include "model_scores.h"

int main() {
  char kind[16];
  while (scanf("%15s", kind) == 1) {
    float scale = 0.0f;
    int zero_point = 0;
    if (scanf("%f %d", &scale, &zero_point) != 2) {
      printf("error\n");
      return 2;
    }
    if (strcmp(kind, "table") == 0) {
      int8_t table[256];
      BuildFeatureInputTable(scale, zero_point, table);
      for (int i = 0; i < 256; ++i) printf(i ? " %d" : "%d", table[i]);
      printf("\n");
    } else if (strcmp(kind, "scores") == 0) {
      int probability = 0;
      int8_t output[kCategoryCount];
      bool ok = scanf("%d", &probability) == 1;
      for (int i = 0; ok && i < kCategoryCount; ++i) {
        int v = 0;
        ok = scanf("%d", &v) == 1 && v >= -128 && v <= 127;
        output[i] = static_cast<int8_t>(v);
      }
      if (!ok) {
        printf("error\n");
        return 2;
      }
      uint8_t scores[kCategoryCount];
      OutputToScores(output, scale, zero_point, probability != 0, scores);
      for (int i = 0; i < kCategoryCount; ++i) printf(i ? " %d" : "%d", scores[i]);
      printf("\n");
    } else {
      printf("error\n");
      return 2;
    }
    fflush(stdout);
  }
  return 0;
}
