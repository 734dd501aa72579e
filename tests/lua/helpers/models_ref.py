"""PyTorch versions of ser.models (CNN2D, CRNN, CNN1D): the seed notebook's modules with
its attribute names (CNN2D features/classifier, CRNN cnn/rnn/head, CNN1D net/fc), so
models_spec.lua can compare state_dict keys and shapes with ours and the checkpoint specs
can load the notebook's state_dicts.

Usage: python3 models_ref.py [classes] [hidden]
Prints one line per state_dict entry: "<model> <key> <d0>x<d1>x..." in PyTorch order.
"""
import sys

import torch
import torch.nn as nn


class CNN2D(nn.Module):
    def __init__(self, classes):
        super().__init__()
        layers, c_in = [], 1
        for i, c in enumerate([32, 64, 128, 256]):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.MaxPool2d(2) if i < 3 else nn.AdaptiveAvgPool2d(1)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(256, 128), nn.ReLU(),
                                        nn.Dropout(0.3), nn.Linear(128, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class CRNN(nn.Module):
    def __init__(self, classes, hidden=128):
        super().__init__()
        layers, c_in = [], 1
        for c in [32, 64, 128]:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.cnn = nn.Sequential(*layers)
        self.rnn = nn.LSTM(128, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Linear(2 * hidden, classes))

    def forward(self, x):
        f = self.cnn(x).mean(dim=2)               # [B,128,T]
        out, _ = self.rnn(f.permute(0, 2, 1))     # [B,T,2H]
        return self.head(out.mean(dim=1))


class CNN1D(nn.Module):
    """The notebook's CNN1D; front (layers before the convolutions, giving c_in channels) and
    widths let CNN1DFilterbank build ser's filterbank variant on the same code."""
    def __init__(self, classes, front=(), c_in=1, widths=(32, 64, 128, 256)):
        super().__init__()
        layers = list(front)
        for c in widths:
            layers += [nn.Conv1d(c_in, c, 9, stride=2, padding=4), nn.BatchNorm1d(c), nn.ReLU()]
            c_in = c
        layers.append(nn.AdaptiveAvgPool1d(1))
        self.net = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(256, classes))

    def forward(self, x):
        return self.fc(self.net(x))


class Square(nn.Module):
    def forward(self, x):
        return x * x


class Log(nn.Module):
    """log(x + eps), ser's nn.Log(eps)."""
    def __init__(self, eps):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        return torch.log(x + self.eps)


class CNN1DFilterbank(CNN1D):
    """CNN1D with frontend = "filterbank" (ser.models): the same layers and names; the first
    convolution's taps are left random here (ser initialises them as sinc band-passes), which
    changes no shape or cost."""
    def __init__(self, classes):
        super().__init__(classes, front=[nn.Conv1d(1, 64, 257, stride=2, padding=128), Square(), nn.AvgPool1d(80),
                                         Log(1e-6), nn.BatchNorm1d(64)], c_in=64, widths=(128, 128, 256, 256))


def main():
    classes = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    hidden = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    for name, model in (("cnn2d", CNN2D(classes)), ("crnn", CRNN(classes, hidden)), ("cnn1d", CNN1D(classes))):
        for key, t in model.state_dict().items():
            print(name, key, "x".join(str(d) for d in t.shape) or "1")


if __name__ == "__main__":
    main()
