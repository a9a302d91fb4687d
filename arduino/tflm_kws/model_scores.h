// The int8 model's input and output conversions, apart from TFLM so that the host tests check
// them against Python: int8 feature -> int8 model input, int8 model output -> recognizer scores.
#ifndef TFLM_KWS_MODEL_SCORES_H_
#define TFLM_KWS_MODEL_SCORES_H_

#include <cstdint>

// table[v + 128] = round(v * kFeatureInputScale / input_scale) + input_zero_point, clamped to
// int8 (round half away from zero), for every int8 feature value v.
void BuildFeatureInputTable(float input_scale, int input_zero_point, int8_t table[256]);

// kCategoryCount scores, probability * 256 rounded and clamped to 0..255, from the raw int8
// output: dequantized probabilities when the model ends in SOFTMAX, else a softmax of the
// dequantized logits.
void OutputToScores(const int8_t* output, float output_scale, int output_zero_point,
                    bool output_is_probability, uint8_t* scores);

#endif  // TFLM_KWS_MODEL_SCORES_H_
