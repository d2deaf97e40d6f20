"""ONNX's checker and ONNX Runtime on files `vggdsl export` wrote, for tests/onnx.rs.

    python onnx_check.py JOBS.json

JOBS.json is a list of {"onnx": PATH, "inputs": PATH, "outputs": PATH}. For each job the model
is checked with `onnx.checker.check_model(model, full_check=True)` (a failure raises, exit 1),
then run by ONNX Runtime on the CPU provider: every tensor of the `inputs` safetensors file
goes through one session, and the outputs are saved under the same names in `outputs`.

Prints one JSON list, a report per job: the opset and IR version, the producer, the
initializers' names in order, the graph's input and output (name and dims: a dim_param as a
string, a dim_value as an int) and the nodes (op type and name). Needs onnx, onnxruntime,
numpy and safetensors, not torch.
"""

import json
import sys

import onnx
import onnxruntime as ort
from safetensors.numpy import load_file, save_file


def dims(value_info):
    shape = value_info.type.tensor_type.shape
    return [d.dim_param if d.HasField('dim_param') else d.dim_value for d in shape.dim]


def run(job):
    model = onnx.load(job['onnx'])
    onnx.checker.check_model(model, full_check=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the tests run beside each other
    session = ort.InferenceSession(job['onnx'], options, providers=['CPUExecutionProvider'])
    (input_name,) = [i.name for i in session.get_inputs()]
    outputs = {name: session.run(None, {input_name: x})[0]
               for name, x in load_file(job['inputs']).items()}
    save_file(outputs, job['outputs'])
    graph = model.graph
    return {
        'opset': [[o.domain, o.version] for o in model.opset_import],
        'ir_version': model.ir_version,
        'producer': [model.producer_name, model.producer_version],
        'initializers': [t.name for t in graph.initializer],
        'inputs': [[v.name, dims(v)] for v in graph.input],
        'outputs': [[v.name, dims(v)] for v in graph.output],
        'nodes': [[n.op_type, n.name] for n in graph.node],
    }


def main():
    (path,) = sys.argv[1:]
    with open(path) as f:
        jobs = json.load(f)
    print(json.dumps([run(job) for job in jobs]))


if __name__ == '__main__':
    main()
