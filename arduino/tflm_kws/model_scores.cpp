#include "model_scores.h"

#include <cmath>

#include "model_data.h"

void BuildFeatureInputTable(float input_scale, int input_zero_point, int8_t table[256]) {
  for (int v = -128; v <= 127; ++v) {
    long q = std::lround(static_cast<double>(v) * kFeatureInputScale / input_scale) +
             input_zero_point;
    if (q < -128) q = -128;
    if (q > 127) q = 127;
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
    const long score = std::lround(probabilities[i] * 256.0f);
    scores[i] = static_cast<uint8_t>(score < 0 ? 0 : (score > 255 ? 255 : score));
  }
}
