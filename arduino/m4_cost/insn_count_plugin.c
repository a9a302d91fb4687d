/* QEMU TCG plugin: counts the guest instructions executed, and records the running count each
 * time the marker function (its address: the `mark=0x...` argument) starts executing. The
 * firmware calls the marker around what it measures and prints which tag each call had; the
 * difference of two recorded counts is the instructions executed between the two calls (the
 * marker's own instructions are the same every time, so they cancel).
 *
 * Counting is per instruction (an inline add before every instruction), so it is exact even when
 * a translation block is left early. Output: one line "<count>" per marker call, written to the
 * `out=` file at exit, then "total <count>".
 *
 * QEMU 7.2 accepts -plugin with plugin API version 1; Debian ships no qemu-plugin.h, so the few
 * API functions used are declared here, exactly as that header declares them. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                    void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t count;       /* instructions executed so far (one vCPU: mps2 has one core) */
static uint64_t mark_addr;   /* the marker function's first instruction (Thumb bit cleared) */
static uint64_t *marks;
static size_t n_marks, cap_marks;
static char out_path[4096];

static void on_mark(unsigned int vcpu_index, void *userdata) {
  (void)vcpu_index;
  (void)userdata;
  if (n_marks == cap_marks) {
    cap_marks = cap_marks ? 2 * cap_marks : 1024;
    marks = realloc(marks, cap_marks * sizeof(*marks));
    if (!marks) abort();
  }
  marks[n_marks++] = count;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  size_t n = qemu_plugin_tb_n_insns(tb);
  for (size_t i = 0; i < n; ++i) {
    struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    if (qemu_plugin_insn_vaddr(insn) == mark_addr) {
      /* Registered first: runs before this instruction's own count is added. */
      qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
    qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &count, 1);
  }
}

static void on_qemu_exit(qemu_plugin_id_t id, void *userdata) {
  (void)id;
  (void)userdata;
  FILE *f = fopen(out_path, "w");
  if (!f) {
    fprintf(stderr, "insn_count_plugin: cannot write %s\n", out_path);
    return;
  }
  for (size_t i = 0; i < n_marks; ++i) fprintf(f, "%" PRIu64 "\n", marks[i]);
  fprintf(f, "total %" PRIu64 "\n", count);
  fclose(f);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const qemu_info_t *info, int argc,
                                                               char **argv) {
  (void)info;
  int have_mark = 0, have_out = 0;
  for (int i = 0; i < argc; ++i) {
    if (strncmp(argv[i], "mark=", 5) == 0) {
      mark_addr = strtoull(argv[i] + 5, NULL, 0) & ~(uint64_t)1;
      have_mark = 1;
    } else if (strncmp(argv[i], "out=", 4) == 0 && strlen(argv[i] + 4) < sizeof(out_path)) {
      strcpy(out_path, argv[i] + 4);
      have_out = 1;
    } else {
      fprintf(stderr, "insn_count_plugin: unknown argument '%s' (want mark=ADDR,out=FILE)\n",
              argv[i]);
      return -1;
    }
  }
  if (!have_mark || !have_out) {
    fprintf(stderr, "insn_count_plugin: needs mark=ADDR and out=FILE\n");
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
  return 0;
}
