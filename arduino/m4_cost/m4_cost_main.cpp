// The emulated Cortex-M4 cost runner: the sketch's own code (ModelRunner, FeatureProvider,
// RecognizeCommands through KeywordSpotter) and the Arduino library's TFLM with CMSIS-NN kernels,
// built like the board build (-Os, Cortex-M4F), run bare-metal in qemu-system-arm -M mps2-an386.
// Marks (m4_cost_marker.h) bracket what is measured; the QEMU plugin counts the instructions.
//
// Measured, for the model in model_data.{h,cc} (written by tflm_kws.m4_cost):
//   1. kInvokeRuns plain Invoke() calls on pseudo-random inputs (an interpreter without profiler);
//      a streaming model's call is one Invoke() on its new frames and states;
//   2. one Invoke() with a profiler that marks every op (per-op counts, op names printed);
//   3. the whole 20 ms step as the sketch runs it: KeywordSpotter::Process() after each new 20 ms
//      of (pseudo-random, speech-level) audio, from a fresh start, for kSteps steps (a streaming
//      model runs in every kModelStreamFrames-th step).
// Printed (semihosting stdout): "arena_used <bytes>", "output <int8...>" (first invoke),
// "op <i> <name>" per op, then the tags.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#include "audio_provider.h"
#include "host_audio_provider.h"
#include "keyword_spotter.h"
#include "m4_cost_marker.h"
#include "model_data.h"
#include "model_runner.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/schema/schema_generated.h"

// Tags of the marks (tflm_kws/m4_cost.py reads them).
enum : uint32_t {
  kTagInvokeBegin = 1, kTagInvokeEnd = 2, kTagOpBegin = 3, kTagOpEnd = 4, kTagStepBegin = 5,
  kTagStepEnd = 6,
};
constexpr int kInvokeRuns = 3;
constexpr int kSteps = 75;  // 1.5 s of audio: the first ~50 steps fill the feature window
constexpr int kMaxOps = 256;
constexpr int kStepSamples = kAudioSampleRate * kFeatureWindowStrideMs / 1000;

namespace {

alignas(16) uint8_t g_arena_plain[kTensorArenaSize];
alignas(16) uint8_t g_arena_profiled[kTensorArenaSize];
alignas(16) uint8_t g_arena_sketch[kTensorArenaSize];

class MarkingProfiler : public tflite::MicroProfilerInterface {
 public:
  uint32_t BeginEvent(const char* tag) override {
    m4cost_mark(kTagOpBegin);
    if (count_ < kMaxOps) tags_[count_] = tag;
    return static_cast<uint32_t>(count_++);
  }
  void EndEvent(uint32_t) override { m4cost_mark(kTagOpEnd); }
  int count() const { return count_; }
  const char* tag(int i) const { return tags_[i] ? tags_[i] : "?"; }

 private:
  const char* tags_[kMaxOps] = {};
  int count_ = 0;
};

uint32_t g_random = 12345u;
uint32_t NextRandom() {  // xorshift32: the same input on every run
  g_random ^= g_random << 13;
  g_random ^= g_random >> 17;
  g_random ^= g_random << 5;
  return g_random;
}

// Every input (a streaming model's states too), in order, from one pseudo-random sequence.
bool FillInput(tflite::MicroInterpreter* interpreter) {
  for (size_t k = 0; k < interpreter->inputs_size(); ++k) {
    TfLiteTensor* input = interpreter->input(k);
    if (input == nullptr || input->type != kTfLiteInt8) return false;
    for (size_t i = 0; i < input->bytes; ++i) {
      input->data.int8[i] = static_cast<int8_t>(NextRandom() & 0xff);
    }
  }
  return true;
}

int Fail(const char* what) {
  printf("m4_cost: %s\n", what);
  return 1;
}

}  // namespace

int main() {
  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) return Fail("schema version mismatch");
  tflite::MicroMutableOpResolver<kModelOpCount> resolver;
  TFLM_KWS_ADD_MODEL_OPS(resolver);

  // 1. Whole invokes.
  tflite::MicroInterpreter plain(model, resolver, g_arena_plain, kTensorArenaSize);
  if (plain.AllocateTensors() != kTfLiteOk) return Fail("AllocateTensors failed (plain)");
  printf("arena_used %lu\n", static_cast<unsigned long>(plain.arena_used_bytes()));
  for (int run = 0; run < kInvokeRuns; ++run) {
    if (!FillInput(&plain)) return Fail("the model input is not int8");
    m4cost_mark(kTagInvokeBegin);
    const TfLiteStatus status = plain.Invoke();
    m4cost_mark(kTagInvokeEnd);
    if (status != kTfLiteOk) return Fail("Invoke failed");
    if (run == 0) {  // the output for the first input (tflm_kws.m4_cost.reference_input)
      const TfLiteTensor* output = plain.output(0);
      printf("output");
      for (size_t i = 0; i < output->bytes; ++i) printf(" %d", output->data.int8[i]);
      printf("\n");
    }
  }

  // 2. One invoke, op by op.
  static MarkingProfiler profiler;
  tflite::MicroInterpreter profiled(model, resolver, g_arena_profiled, kTensorArenaSize,
                                    nullptr, &profiler);
  if (profiled.AllocateTensors() != kTfLiteOk) return Fail("AllocateTensors failed (profiled)");
  if (!FillInput(&profiled)) return Fail("the model input is not int8");
  if (profiled.Invoke() != kTfLiteOk) return Fail("Invoke failed (profiled)");
  for (int i = 0; i < profiler.count() && i < kMaxOps; ++i) printf("op %d %s\n", i, profiler.tag(i));

  // 3. The sketch's 20 ms step.
  static ModelRunner runner(g_arena_sketch, kTensorArenaSize);
  static KeywordSpotter spotter(&runner);
  if (!runner.Begin(g_model_data) || !spotter.Begin()) return Fail("the sketch's Begin failed");
  HostAudioReset();
  int16_t samples[kStepSamples];
  for (int step = 0; step < kSteps; ++step) {
    for (int i = 0; i < kStepSamples; ++i) {
      samples[i] = static_cast<int16_t>(static_cast<int32_t>(NextRandom() % 8001u) - 4000);
    }
    HostAudioCapture(samples, kStepSamples);
    SpotterResult result;
    m4cost_mark(kTagStepBegin);
    const bool ok = spotter.Process(LatestAudioSampleCount(), &result);
    m4cost_mark(kTagStepEnd);
    if (!ok) return Fail("KeywordSpotter::Process failed");
  }
  m4cost_print_marks();
  return 0;
}
