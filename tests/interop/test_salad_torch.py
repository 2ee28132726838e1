"""cvft-convert-salad: the authors' PyTorch DINOv2 + SALAD vs the converted Keras model.

The PyTorch side is written here from the public code (facebookresearch/dinov2
``dinov2/models/vision_transformer.py`` and ``layers/``, serizba/salad
``models/backbones/dinov2.py`` and ``models/aggregators/salad.py``) with the same parameter
names, tiny and random. The state dicts are built in numpy (:func:`tiny_checkpoint`), so the
tests of errors and of loading without torch run where torch is not installed; the parity
tests skip there.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from cvft_tf.interop import salad_torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = dict(hidden=32, heads=2, layers=2, mlp=64, patch=14, grid=4, clusters=4, cluster_dim=8, token_dim=16, width=24)
"""DINOv2: 32 channels, 2 heads, 2 blocks, MLP 64, 14-pixel patches, 4x4 trained grid (56x56
images); SALAD: 4 clusters of 8, a 16-d token part, MLPs 24 wide."""


def tiny_checkpoint(seed=0, **overrides):
    """A random state dict in the layout of the authors' ``dino_salad.ckpt``, as numpy arrays."""
    size = {**TINY, **overrides}
    rng = np.random.default_rng(seed)
    c, m, p, w = size["hidden"], size["mlp"], size["patch"], size["width"]

    def normal(*shape, scale=0.2):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    def norm(prefix):
        return {f"{prefix}.weight": 1 + normal(c, scale=0.1), f"{prefix}.bias": normal(c, scale=0.1)}

    backbone = {
        "cls_token": normal(1, 1, c, scale=0.5),
        "pos_embed": normal(1, 1 + size["grid"] ** 2, c, scale=0.5),
        "mask_token": normal(1, c),
        "patch_embed.proj.weight": normal(c, 3, p, p, scale=0.05),
        "patch_embed.proj.bias": normal(c),
        **norm("norm"),
    }
    for i in range(size["layers"]):
        backbone.update(norm(f"blocks.{i}.norm1"))
        backbone.update(norm(f"blocks.{i}.norm2"))
        backbone.update({
            f"blocks.{i}.attn.qkv.weight": normal(3 * c, c),
            f"blocks.{i}.attn.qkv.bias": normal(3 * c),
            f"blocks.{i}.attn.proj.weight": normal(c, c),
            f"blocks.{i}.attn.proj.bias": normal(c),
            f"blocks.{i}.ls1.gamma": 0.5 + normal(c),
            f"blocks.{i}.mlp.fc1.weight": normal(m, c),
            f"blocks.{i}.mlp.fc1.bias": normal(m),
            f"blocks.{i}.mlp.fc2.weight": normal(c, m),
            f"blocks.{i}.mlp.fc2.bias": normal(c),
            f"blocks.{i}.ls2.gamma": 0.5 + normal(c),
        })  # fmt: skip
    aggregator = {
        "token_features.0.weight": normal(w, c),
        "token_features.0.bias": normal(w),
        "token_features.2.weight": normal(size["token_dim"], w),
        "token_features.2.bias": normal(size["token_dim"]),
        "cluster_features.0.weight": normal(w, c, 1, 1),
        "cluster_features.0.bias": normal(w),
        "cluster_features.3.weight": normal(size["cluster_dim"], w, 1, 1),
        "cluster_features.3.bias": normal(size["cluster_dim"]),
        "score.0.weight": normal(w, c, 1, 1),
        "score.0.bias": normal(w),
        "score.3.weight": normal(size["clusters"], w, 1, 1, scale=1.0),
        "score.3.bias": normal(size["clusters"]),
        "dust_bin": np.float32(1.2).reshape(()),
    }
    return {
        **{f"backbone.model.{key}": value for key, value in backbone.items()},
        **{f"aggregator.{key}": value for key, value in aggregator.items()},
    }


def converted_place_model(tmp_path, checkpoint, image_size, name="salad", **kwargs):
    """Converts ``checkpoint`` (numpy) to files, then builds the model from them as cvft-eval-place does."""
    from cvft_tf.models.place_recognition import PlaceRecognitionModel

    out = tmp_path / f"{name}.weights.h5"
    sources = salad_torch.split_sources(checkpoint, "--ckpt tiny.ckpt")
    _, _, config = salad_torch.convert(sources, str(out), image_size=image_size, num_heads=TINY["heads"], **kwargs)
    (tmp_path / f"{name}.json").write_text(json.dumps(config))
    model = PlaceRecognitionModel(image_size=image_size, **config)
    model.load_weights(str(out))
    return model, out, config


def images(image_size, seed=1, batch=2):
    """ImageNet-normalised RGB images ``[B, H, W, 3]`` (the place model's default input)."""
    return np.random.default_rng(seed).standard_normal((batch, *image_size, 3)).astype(np.float32)


# ---------------------------------------------------------------- PyTorch reference (needs torch)


def torch_salad_model(checkpoint, size=TINY):
    """The authors' VPRModel (DINOv2 backbone + SALAD) of ``size`` (:data:`TINY`'s keys) in PyTorch,
    loaded strictly from ``checkpoint``."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    c, heads, patch = size["hidden"], size["heads"], size["patch"]

    class PatchEmbed(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(3, c, patch, patch)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)

        def forward(self, x):
            b, n, _ = x.shape
            q, k, v = self.qkv(x).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
            attention = ((q * (c // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
            return self.proj((attention @ v).transpose(1, 2).reshape(b, n, c))

    class LayerScale(nn.Module):
        def __init__(self):
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(c))

        def forward(self, x):
            return x * self.gamma

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.act, self.fc2 = nn.Linear(c, size["mlp"]), nn.GELU(), nn.Linear(size["mlp"], c)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.attn, self.ls1 = nn.LayerNorm(c, eps=1e-6), Attention(), LayerScale()
            self.norm2, self.mlp, self.ls2 = nn.LayerNorm(c, eps=1e-6), Mlp(), LayerScale()

        def forward(self, x):
            x = x + self.ls1(self.attn(self.norm1(x)))
            return x + self.ls2(self.mlp(self.norm2(x)))

    class DinoVisionTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = PatchEmbed()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, c))
            self.pos_embed = nn.Parameter(torch.zeros(1, 1 + size["grid"] ** 2, c))
            self.mask_token = nn.Parameter(torch.zeros(1, c))
            self.blocks = nn.ModuleList([Block() for _ in range(size["layers"])])
            self.norm = nn.LayerNorm(c, eps=1e-6)

        def interpolate_pos_encoding(self, x, w, h):  # DINOv2's, interpolate_offset=0.1, no antialias
            npatch, n = x.shape[1] - 1, self.pos_embed.shape[1] - 1
            if npatch == n and w == h:
                return self.pos_embed
            w0, h0, side = w // patch, h // patch, int(math.sqrt(n))
            grid = self.pos_embed[:, 1:].reshape(1, side, side, c).permute(0, 3, 1, 2)
            grid = nn.functional.interpolate(
                grid, mode="bicubic", antialias=False, scale_factor=((w0 + 0.1) / side, (h0 + 0.1) / side)
            )
            assert (w0, h0) == grid.shape[-2:]
            return torch.cat((self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).view(1, -1, c)), dim=1)

        def prepare_tokens_with_masks(self, x):
            _, _, w, h = x.shape
            x = self.patch_embed(x)
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
            return x + self.interpolate_pos_encoding(x, w, h)

    class DINOv2(nn.Module):  # salad/models/backbones/dinov2.py, norm_layer=True, return_token=True
        def __init__(self):
            super().__init__()
            self.model = DinoVisionTransformer()

        def forward(self, x):
            b, _, height, width = x.shape
            x = self.model.prepare_tokens_with_masks(x)
            for block in self.model.blocks:
                x = block(x)
            x = self.model.norm(x)
            return x[:, 1:].reshape(b, height // patch, width // patch, c).permute(0, 3, 1, 2), x[:, 0]

    def get_matching_probs(scores, dustbin, num_iters=3):  # salad/models/aggregators/salad.py
        batch, m, n = scores.shape
        augmented = torch.empty(batch, m + 1, n)
        augmented[:, :m], augmented[:, m] = scores, dustbin
        norm = -torch.tensor(math.log(n + m))
        log_a, log_b = norm.expand(m + 1).contiguous(), norm.expand(n).contiguous()
        log_a[-1] = log_a[-1] + math.log(n - m)
        log_a, log_b = log_a.expand(batch, -1), log_b.expand(batch, -1)
        u, v = torch.zeros_like(log_a), torch.zeros_like(log_b)
        for _ in range(num_iters):
            u = log_a - torch.logsumexp(augmented + v.unsqueeze(1), dim=2).squeeze()
            v = log_b - torch.logsumexp(augmented + u.unsqueeze(2), dim=1).squeeze()
        return augmented + u.unsqueeze(2) + v.unsqueeze(1) - norm

    class SALAD(nn.Module):
        def __init__(self):
            super().__init__()
            width, clusters, cluster_dim = size["width"], size["clusters"], size["cluster_dim"]
            self.token_features = nn.Sequential(nn.Linear(c, width), nn.ReLU(), nn.Linear(width, size["token_dim"]))
            self.cluster_features = nn.Sequential(
                nn.Conv2d(c, width, 1), nn.Dropout(0.3), nn.ReLU(), nn.Conv2d(width, cluster_dim, 1)
            )
            self.score = nn.Sequential(
                nn.Conv2d(c, width, 1), nn.Dropout(0.3), nn.ReLU(), nn.Conv2d(width, clusters, 1)
            )
            self.dust_bin = nn.Parameter(torch.tensor(1.0))

        def forward(self, inputs):
            x, t = inputs
            f, p, t = self.cluster_features(x).flatten(2), self.score(x).flatten(2), self.token_features(t)
            p = torch.exp(get_matching_probs(p, self.dust_bin, 3))[:, :-1, :]
            p = p.unsqueeze(1).repeat(1, size["cluster_dim"], 1, 1)
            f = f.unsqueeze(2).repeat(1, 1, size["clusters"], 1)
            f = torch.cat(
                [nn.functional.normalize(t, dim=-1), nn.functional.normalize((f * p).sum(dim=-1), dim=1).flatten(1)],
                dim=-1,
            )
            return nn.functional.normalize(f, dim=-1)

    class VPRModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone, self.aggregator = DINOv2(), SALAD()

        def forward(self, x):
            return self.aggregator(self.backbone(x))

    model = VPRModel().eval()
    model.load_state_dict({key: torch.from_numpy(np.asarray(value)) for key, value in checkpoint.items()}, strict=True)
    return model


def torch_descriptors(model, images_nhwc):
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        return model(torch.from_numpy(images_nhwc.transpose(0, 3, 1, 2).copy())).numpy()


def torch_save(checkpoint, path, lightning=False):
    torch = pytest.importorskip("torch")
    state = {key: torch.from_numpy(np.asarray(value)) for key, value in checkpoint.items()}
    torch.save({"state_dict": state, "epoch": 3, "global_step": 7} if lightning else state, path)
    return path


@pytest.mark.parametrize("image_size", [(56, 56), (70, 84)], ids=["trained_grid", "interpolated"])
def test_converted_descriptors_match_torch(tmp_path, image_size):
    checkpoint = tiny_checkpoint()
    reference = torch_salad_model(checkpoint)
    model, _, config = converted_place_model(tmp_path, checkpoint, image_size)
    batch = images(image_size)
    expected = torch_descriptors(reference, batch)
    found = model(batch).numpy()
    assert config["backbone_kwargs"]["position_interpolation"] == "torch"
    assert found.shape == (2, TINY["token_dim"] + TINY["clusters"] * TINY["cluster_dim"])
    np.testing.assert_allclose(found, expected, atol=1e-4)


@pytest.mark.large
def test_the_command_converts_a_lightning_checkpoint_and_a_dinov2_file(tmp_path):
    """The ckpt holds the SALAD head and DINOv2's last block + norm (over the .pth's values);
    the .pth the rest. Run as a user would; the files load with cvft-eval-place's loader."""
    checkpoint = tiny_checkpoint()
    pth_only = ("cls_token", "pos_embed", "mask_token", "patch_embed.", "blocks.0.")
    dinov2 = {key[len("backbone.model.") :]: value for key, value in checkpoint.items() if key.startswith("backbone.")}
    pth_only = tuple(f"backbone.model.{key}" for key in pth_only)
    ckpt = {key: value for key, value in checkpoint.items() if not key.startswith(pth_only)}
    stale = {key: (value + 1.0 if key.startswith(("blocks.1.", "norm.")) else value) for key, value in dinov2.items()}
    torch_save(ckpt, tmp_path / "dino_salad.ckpt", lightning=True)
    torch_save(stale, tmp_path / "dinov2.pth")
    out = tmp_path / "out" / "salad.weights.h5"
    result = subprocess.run(
        [sys.executable, "-m", "cvft_tf.cli.convert_salad", f"--ckpt={tmp_path / 'dino_salad.ckpt'}",
         f"--dinov2={tmp_path / 'dinov2.pth'}", f"--out={out}", "--num_heads=2", "--image_size=70,84"],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "blocks.0.attn.qkv.weight (--dinov2" in result.stdout
    assert "3/3 steps" in result.stdout  # progress, as plain lines in a pipe
    from cvft_tf.cli.evaluate_place import load_place_model

    model = load_place_model(str(out), (70, 84), str(tmp_path / "out" / "salad.json"))
    batch = images((70, 84))
    np.testing.assert_allclose(model(batch).numpy(), torch_descriptors(torch_salad_model(checkpoint), batch), atol=1e-4)


def test_cross_view_variant_puts_the_weights_in_both_branches(tmp_path):
    """Both branches of the ``salad`` CrossViewModel get the weights; each gives the torch
    descriptor of the same image (BGR pixels: the cross-view input format)."""
    checkpoint = tiny_checkpoint()
    out = tmp_path / "cross.weights.h5"
    sources = salad_torch.split_sources(checkpoint, "--ckpt tiny.ckpt")
    _, _, config = salad_torch.convert(
        sources, str(out), variant="cross_view", ground_size=(28, 84), aerial_size=(56, 56), num_heads=TINY["heads"]
    )
    from cvft_tf.models.cross_view import build_model
    from cvft_tf.models.dinov2 import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB

    model = build_model(**config)
    model.load_weights(str(out))
    reference = torch_salad_model(checkpoint)
    for branch, size in (("ground", (28, 84)), ("aerial", (56, 56))):
        bgr = np.random.default_rng(2).uniform(0, 255, (2, *size, 3)).astype(np.float32)
        rgb = (bgr[..., ::-1] / 255.0 - np.float32(IMAGENET_MEAN_RGB)) / np.float32(IMAGENET_STD_RGB)
        found = getattr(model, f"{branch}_encoder")(bgr).numpy()
        np.testing.assert_allclose(found, torch_descriptors(reference, rgb.astype(np.float32)), atol=1e-4)


# ---------------------------------------------------------------------------- no torch needed


def test_shapes_give_the_architecture():
    sources = salad_torch.split_sources(tiny_checkpoint(), "--ckpt tiny.ckpt")
    backbone = salad_torch.infer_backbone_kwargs(sources, num_heads=2)
    assert backbone == dict(
        patch_size=14, num_layers=2, hidden_dim=32, num_heads=2, intermediate_dim=64, layer_scale_init_value=1.0,
        num_register_tokens=0, use_mask_token=True, position_embedding_shape=[56, 56, 3],
        position_interpolation="torch",
    )  # fmt: skip
    assert salad_torch.infer_salad_kwargs(sources) == dict(num_clusters=4, cluster_dim=8, token_dim=16, hidden_dim=24)
    with pytest.raises(salad_torch.SaladConversionError, match=r"32 channels are not a multiple of .*\(--num_heads\)"):
        salad_torch.infer_backbone_kwargs(sources)
    wide = salad_torch.split_sources(tiny_checkpoint(hidden=128, layers=3), "--ckpt wide.ckpt")
    assert salad_torch.infer_backbone_kwargs(wide)["num_heads"] == 2
    assert salad_torch.infer_backbone_kwargs(wide)["num_layers"] == 3


def test_chunked_blocks_are_read_as_plain_blocks():
    chunked = {key.replace("model.blocks.1.", "model.blocks.3.1."): value for key, value in tiny_checkpoint().items()}
    checkpoint = chunked
    sources = salad_torch.split_sources(checkpoint, "--ckpt tiny.ckpt")
    assert "blocks.1.attn.qkv.weight" in sources.backbone
    assert sources.origin[("backbone", "blocks.1.attn.qkv.weight")] == "backbone.model.blocks.3.1.attn.qkv.weight"


def test_missing_wrong_and_unexpected_keys_are_listed_together(tmp_path):
    checkpoint = tiny_checkpoint()
    del checkpoint["backbone.model.blocks.1.ls2.gamma"]
    checkpoint["aggregator.score.0.bias"] = np.zeros(7, np.float32)
    checkpoint["loss_fn.weight"] = np.zeros(3, np.float32)
    sources = salad_torch.split_sources(checkpoint, "--ckpt tiny.ckpt")
    out = tmp_path / "never.weights.h5"
    with pytest.raises(salad_torch.SaladConversionError) as raised:
        salad_torch.convert(sources, str(out), image_size=(56, 56), num_heads=2)
    message = str(raised.value)
    assert message.startswith("--ckpt tiny.ckpt cannot be converted to DINOv2 + SALAD:\n  1 missing:")
    assert "backbone.model.blocks.1.ls2.gamma [32]" in message
    assert "aggregator.score.0.bias: file [7], model [24]" in message
    assert "loss_fn.weight [3]" in message
    assert not out.exists() and not list(tmp_path.iterdir())


def test_ignore_extra_skips_and_returns_unused_keys(tmp_path):
    checkpoint = {**tiny_checkpoint(), "loss_fn.weight": np.zeros(3, np.float32)}
    sources = salad_torch.split_sources(checkpoint, "--ckpt tiny.ckpt")
    rows, unused, _ = salad_torch.convert(
        sources, str(tmp_path / "a.weights.h5"), image_size=(56, 56), num_heads=2, ignore_extra=True
    )
    assert unused == [("loss_fn.weight", (3,))]
    assert len(rows) == 6 + 1 + 2 * 18 + 13  # embeddings, norm, mask; 18 per block; SALAD


def test_reading_without_torch_says_how_to_install_it(tmp_path, monkeypatch):
    path = tmp_path / "dino_salad.ckpt"
    path.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(salad_torch.SaladWeightsError, match=r"needs torch: pip install -e '\.\[torch\]'"):
        salad_torch.read_state_dict(str(path), "--ckpt")
    with pytest.raises(FileNotFoundError, match="--ckpt file '.*missing.ckpt' not found"):
        salad_torch.read_state_dict(str(tmp_path / "missing.ckpt"), "--ckpt")


LOAD_WITHOUT_TORCH = """
import json, sys
sys.modules["torch"] = None
import numpy as np
from cvft_tf.models.place_recognition import PlaceRecognitionModel
weights, config, images, out = sys.argv[1:]
model = PlaceRecognitionModel(image_size=(70, 84), **json.load(open(config)))
model.load_weights(weights)
np.save(out, model(np.load(images)).numpy())
"""


def test_converted_files_load_without_torch(tmp_path):
    model, weights, _ = converted_place_model(tmp_path, tiny_checkpoint(), (70, 84))
    batch = images((70, 84))
    np.save(tmp_path / "images.npy", batch)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_TORCH, str(weights), str(tmp_path / "salad.json"),
         str(tmp_path / "images.npy"), str(tmp_path / "descriptors.npy")],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "descriptors.npy"), model(batch).numpy(), atol=1e-6)


def test_a_corrupt_checkpoint_is_named(tmp_path):
    pytest.importorskip("torch")
    path = tmp_path / "dino_salad.ckpt"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(salad_torch.SaladWeightsError, match=f"--ckpt {path} is not a readable PyTorch checkpoint"):
        salad_torch.read_state_dict(str(path), "--ckpt")
    import torch

    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(salad_torch.SaladWeightsError, match="holds no state dict"):
        salad_torch.read_state_dict(str(tmp_path / "list.pt"), "--dinov2")


def test_shapes_no_transform_fits_are_wrong_shapes_listed_once(tmp_path):
    checkpoint = tiny_checkpoint()
    checkpoint["aggregator.dust_bin"] = np.ones(2, np.float32)
    checkpoint["backbone.model.blocks.0.attn.qkv.weight"] = np.ones((95, 32), np.float32)
    checkpoint["backbone.model.blocks.1.ls1.gamma"] = np.ones((1, 32), np.float32)
    sources = salad_torch.split_sources(checkpoint, "--ckpt tiny.ckpt")
    with pytest.raises(salad_torch.SaladConversionError) as raised:
        salad_torch.convert(sources, str(tmp_path / "never.weights.h5"), image_size=(56, 56), num_heads=2)
    assert [key for key, _, _ in raised.value.wrong_shape] == [
        "backbone.model.blocks.0.attn.qkv.weight",
        "backbone.model.blocks.1.ls1.gamma",
        "aggregator.dust_bin",
    ]
    assert "aggregator.dust_bin: file [2], model []" in str(raised.value)
