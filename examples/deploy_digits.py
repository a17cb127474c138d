"""Train -> hardware_faithful -> export -> simulate, by hand, on spike-encoded digits.

Shows that a network fine-tuned with ``hardware_faithful`` keeps its accuracy on the bit-exact
integer simulator (identical predictions), next to plain post-training quantization (PTQ).
``snnqat demo`` runs the same job with progress bars, checkpoints, plots and a report.

Run: ``python examples/deploy_digits.py`` (about a minute on 2 CPU cores).
"""

import torch
from torch import nn

import snnqat.transform.torch_transform as tt
from snnqat.devices.xylo import XyloSim, export, hardware_faithful
from snnqat.training.config import DataConfig, ModelConfig
from snnqat.training.data import load_digits_spikes
from snnqat.training.model import build_network, predict

torch.manual_seed(0)
data = load_digits_spikes(DataConfig(), seed=0)  # 8 classes, (N, 20 steps, 16 channels)
net = build_network(ModelConfig(hidden=(48,), recurrent=True), 16, data.n_class)


def train(model, epochs, lr):
    opt = torch.optim.Adam(nn.Module.parameters(model), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(data.x_train))
        for idx in order.split(64):
            model.reset_state()
            counts = model(data.x_train[idx])[0].sum(1)
            loss = nn.functional.cross_entropy(counts, data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def torch_predictions(model):
    model.reset_state()
    with torch.no_grad():
        return predict(model(data.x_test)[0].sum(1))


def simulator_predictions(spec):
    out, _, _ = XyloSim.from_spec(spec)(data.x_test.int().numpy())
    return predict(torch.as_tensor(out).sum(1))


def accuracy(pred):
    return (pred == data.y_test).float().mean().item()


train(net, epochs=15, lr=3e-3)
float_pred = torch_predictions(net)
ptq_spec, ptq_report = export(net, report=True)  # post-training quantization of the float net
ptq_pred = simulator_predictions(ptq_spec)

hf = hardware_faithful(net)  # the chip's integer arithmetic in the forward pass
train(hf, epochs=4, lr=1e-3)  # QAT fine-tuning
hf = tt.apply_T(hf)  # burn the integer values in
qat_pred = torch_predictions(hf)
spec, qat_report = export(hf, report=True)
sim_pred = simulator_predictions(spec)

print("| model | evaluated by | test accuracy |")
print("|---|---|---|")
print(f"| float | torch | {accuracy(float_pred):.4f} |")
print(f"| float, post-training quantized | XyloSim | {accuracy(ptq_pred):.4f} |")
print(f"| hardware_faithful (QAT) | torch | {accuracy(qat_pred):.4f} |")
print(f"| hardware_faithful (QAT), exported | XyloSim | {accuracy(sim_pred):.4f} |")
same = (qat_pred == sim_pred).float().mean().item()
print(f"\nidentical predictions torch vs simulator: {same:.4f} of {len(sim_pred)} test samples")
print(f"values clipped at export: PTQ {sum(ptq_report.clipped.values())}, "
      f"QAT {sum(qat_report.clipped.values())}")  # fmt: skip
