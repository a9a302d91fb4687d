#include "model_scores.h"

#include <cmath>

#include "model_data.h"

void BuildFeatureInputTable(float input_scale, int input_zero_point, int8_t table[256]) {
  for (int v = -128; v <= 127; ++v) {
    // Rounded (half away from zero) and clamped in double: a tiny input scale must saturate, not
    // overflow an integer.
    double q = std::round(static_cast<double>(v) * kFeatureInputScale / input_scale) +
               input_zero_point;
    if (q < -128.0) q = -128.0;
    if (q > 127.0) q = 127.0;
    table[v + 128] = static_cast<int8_t>(q);
  }
}

void OutputToScores(const int8_t* output, float output_scale, int output_zero_point,
                    bool output_is_probability, uint8_t* scores) {
  float probabilities[kCategoryCount];
  if (output_is_probability) {
    for (int i = 0; i < kCategoryCount; ++i) {
      probabilities[i] = (output[i] - output_zero_point) * output_scale;
    }
  } else {
    // Softmax of the dequantized logits; shifting by the largest keeps exp() in range.
    int8_t largest = output[0];
    for (int i = 1; i < kCategoryCount; ++i) {
      if (output[i] > largest) largest = output[i];
    }
    float sum = 0.0f;
    for (int i = 0; i < kCategoryCount; ++i) {
      probabilities[i] = std::exp((output[i] - largest) * output_scale);
      sum += probabilities[i];
    }
    for (int i = 0; i < kCategoryCount; ++i) probabilities[i] /= sum;
  }
  for (int i = 0; i < kCategoryCount; ++i) {
    // Clamped before rounding: a dequantized "probability" can be far outside [0, 1].
    const float scaled = probabilities[i] * 256.0f;
    scores[i] = !(scaled > 0.0f) ? 0 : (scaled >= 255.0f ? 255
                                                          : static_cast<uint8_t>(std::lround(scaled)));
  }
}
