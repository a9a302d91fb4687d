// cmsis_nn_scratch: the scratch buffer CMSIS-NN's Cortex-M4 kernels ask TFLM for, computed by
// CMSIS-NN's own *_get_buffer_size functions (built with ARM_MATH_DSP, as for the nRF52840), for
// the op shapes on stdin; tests/test_arduino_sketch.py checks tflm_kws.export against it.
// One op per line, dims as TFLM's cmsis_nn kernels fill them (NHWC, padding from SAME/VALID):
//   conv <in_h> <in_w> <c_in> <k_h> <k_w> <out_h> <out_w> <c_out> <stride_h> <stride_w>
//        <pad_h> <pad_w> <dil_h> <dil_w>
//   depthwise (same fields)
//   avgpool <out_w> <c_in>
// stdout: one size in bytes per line; a malformed line prints "error" and exits 2.
#include <cstdio>
#include <cstring>

extern "C" {
#include "Include/arm_nnfunctions.h"
}

int main() {
  char kind[16];
  while (scanf("%15s", kind) == 1) {
    if (strcmp(kind, "avgpool") == 0) {
      int out_w = 0, c_in = 0;
      if (scanf("%d %d", &out_w, &c_in) != 2) {
        printf("error\n");
        return 2;
      }
      printf("%d\n", static_cast<int>(arm_avgpool_s8_get_buffer_size(out_w, c_in)));
      continue;
    }
    int v[14];
    for (int& x : v) {
      if (scanf("%d", &x) != 1) {
        printf("error\n");
        return 2;
      }
    }
    cmsis_nn_dims input = {1, v[0], v[1], v[2]};
    cmsis_nn_dims filter = {v[7], v[3], v[4], v[2]};
    cmsis_nn_dims output = {1, v[5], v[6], v[7]};
    if (strcmp(kind, "conv") == 0) {
      cmsis_nn_conv_params params = {};
      params.stride = {v[9], v[8]};
      params.padding = {v[11], v[10]};
      params.dilation = {v[13], v[12]};
      printf("%d\n", static_cast<int>(
          arm_convolve_wrapper_s8_get_buffer_size(&params, &input, &filter, &output)));
    } else if (strcmp(kind, "depthwise") == 0) {
      cmsis_nn_dw_conv_params params = {};
      params.ch_mult = v[7] / v[2];
      params.stride = {v[9], v[8]};
      params.padding = {v[11], v[10]};
      params.dilation = {v[13], v[12]};
      filter = {1, v[3], v[4], v[7]};
      printf("%d\n", static_cast<int>(
          arm_depthwise_conv_wrapper_s8_get_buffer_size(&params, &input, &filter, &output)));
    } else {
      printf("error\n");
      return 2;
    }
  }
  return 0;
}
