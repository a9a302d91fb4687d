// libFuzzer target: the model's input table and output -> scores conversion for any quantization
// a model may carry (positive finite scales, any zero point) and any raw output.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "model_data.h"
#include "model_scores.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 9 + kCategoryCount) return 0;
  float scale;
  int32_t zero_point;
  memcpy(&scale, data, 4);
  memcpy(&zero_point, data + 4, 4);
  if (!(scale > 0.0f) || !std::isfinite(scale)) return 0;  // ModelRunner refuses these models
  zero_point = zero_point % 256 - 128;
  int8_t table[256];
  BuildFeatureInputTable(scale, zero_point, table);
  int8_t output[kCategoryCount];
  memcpy(output, data + 9, kCategoryCount);
  uint8_t scores[kCategoryCount];
  OutputToScores(output, scale, zero_point, (data[8] & 1) != 0, scores);
  return 0;
}
