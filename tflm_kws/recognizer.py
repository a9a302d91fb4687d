"""The sketch's recognizer rules (arduino/tflm_kws/recognize_commands.cpp) in Python, integer for
integer, so that an evaluation on the host reports what the board would detect. A test feeds the
same score sequences to both and requires identical outputs.

Rules (micro_speech's RecognizeCommands): keep the results of the last `average_window_ms`;
with at least `minimum_count` of them spanning a quarter of the window, the label with the highest
integer-averaged score is the current top; it is a new command when its average exceeds
`threshold` and it is not the same non-silence label as the last command within
`suppression_ms`.
"""
import dataclasses

# The sketch's constants (recognize_commands.h).
AVERAGE_WINDOW_MS = 1000
DETECTION_THRESHOLD = 200
SUPPRESSION_MS = 1500
MINIMUM_COUNT = 3
SILENCE_LABEL = "_silence_"
STRIDE_MS = 20  # the frontend's default hop (kFeatureWindowStrideMs)


def max_results(stride_ms=STRIDE_MS):
    """The results the C++ ring keeps: one per slice across the window, plus 2 (the oldest is
    dropped beyond that)."""
    return AVERAGE_WINDOW_MS // int(stride_ms) + 2


@dataclasses.dataclass
class Decision:
    time_ms: int
    label: str
    score: int
    is_new_command: bool


class RecognizeCommands:
    """One recognizer state; feed results in time order with `process`."""

    def __init__(self, labels, threshold=DETECTION_THRESHOLD, average_window_ms=AVERAGE_WINDOW_MS,
                 suppression_ms=SUPPRESSION_MS, minimum_count=MINIMUM_COUNT,
                 stride_ms=STRIDE_MS):
        self.labels = list(labels)
        self.threshold = int(threshold)
        self.average_window_ms = int(average_window_ms)
        self.suppression_ms = int(suppression_ms)
        self.minimum_count = int(minimum_count)
        self.max_results = max_results(stride_ms)
        self.silence = self.labels.index(SILENCE_LABEL) if SILENCE_LABEL in self.labels else -1
        self.results = []  # [(time_ms, scores tuple)], oldest first
        self.previous_top = self.silence
        self.previous_time = 0
        self.has_previous = False

    def process(self, scores, time_ms):
        """Decision for the result `scores` (len(labels) ints 0..255) at `time_ms`."""
        time_ms = int(time_ms)
        if time_ms < 0 or (self.results and time_ms < self.results[-1][0]):
            raise ValueError(f"result time {time_ms} ms is negative or earlier than the last one")
        limit = time_ms - self.average_window_ms
        while self.results and self.results[0][0] < limit:
            self.results.pop(0)
        if len(self.results) == self.max_results:
            self.results.pop(0)
        self.results.append((time_ms, tuple(int(s) for s in scores)))
        span = time_ms - self.results[0][0]
        if len(self.results) < self.minimum_count or span < self.average_window_ms // 4:
            label = self.labels[self.previous_top if self.previous_top >= 0 else 0]
            return Decision(time_ms, label, 0, False)
        count = len(self.results)
        averages = [sum(r[1][i] for r in self.results) // count for i in range(len(self.labels))]
        top, top_score = 0, 0
        for i, value in enumerate(averages):
            if value > top_score:
                top, top_score = i, value
        suppressed = (self.has_previous and self.previous_top != self.silence
                      and top == self.previous_top
                      and time_ms - self.previous_time <= self.suppression_ms)
        is_new = top_score > self.threshold and not suppressed
        if is_new:
            self.previous_top, self.previous_time, self.has_previous = top, time_ms, True
        return Decision(time_ms, self.labels[top], top_score, is_new)


def detections(scores, times_ms, labels, threshold=DETECTION_THRESHOLD):
    """[(time_ms, label)] of the new commands (silence excluded) of one result sequence."""
    recognizer = RecognizeCommands(labels, threshold)
    found = []
    for row, time_ms in zip(scores, times_ms):
        decision = recognizer.process(row, time_ms)
        if decision.is_new_command and decision.label != SILENCE_LABEL:
            found.append((decision.time_ms, decision.label))
    return found
