"""Reads a TensorBoard event file with the real `tensorboard` package and prints JSON:
{"file_version": ..., "records": N, "scalars": {tag: [[step, value], ...]}}.
Every record is read through tensorboard's own TFRecord reader first, which checks both CRCs
(a DataLossError fails this script), then the scalars through EventAccumulator, as
`tensorboard --logdir` loads them."""
import json
import sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow

path = sys.argv[1]

reader = pywrap_tensorflow.PyRecordReader_New(path, 0, "", None)
records = 0
while True:
    try:
        reader.GetNext()
    except errors.OutOfRangeError:
        break
    records += 1

first = next(iter(EventFileLoader(path).Load()))

acc = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.SCALARS: 0})
acc.Reload()
scalars = {
    tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]
}
print(json.dumps({"file_version": first.file_version, "records": records, "scalars": scalars}))
