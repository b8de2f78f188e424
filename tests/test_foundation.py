"""Foundation encoders (issue 30): tiny random ViT and CLIP vision models saved locally, embedded through their own
processors, cached, written by ``embed DATASET --encoder``, read by ``train``; and the bad inputs, one sentence each.

Nothing is downloaded: every model is built from a small config and saved to a temp folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_bad_input import assert_one_line_error, image_folder, run_main, snapshot

transformers = pytest.importorskip("transformers")

from fewlabels.foundation import embed_images, load_encoder  # noqa: E402
from fewlabels.foundation.embedding import pooled  # noqa: E402

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("encoders")
    torch.manual_seed(0)
    vit, clip, bert, bare = root / "vit", root / "clip", root / "bert", root / "bare"
    transformers.ViTModel(transformers.ViTConfig(**TINY)).save_pretrained(vit)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(vit)
    transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**TINY)).save_pretrained(clip)
    transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(clip)
    transformers.BertModel(transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                   intermediate_size=64, vocab_size=50)).save_pretrained(bert)
    transformers.ViTModel(transformers.ViTConfig(**TINY)).save_pretrained(bare)  # no image processor beside it
    both = root / "clip-image-text"  # a two-tower model: only its image side embeds
    text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=50)
    transformers.CLIPModel(transformers.CLIPConfig(vision_config=TINY, text_config=text, projection_dim=16)).save_pretrained(both)
    transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(both)
    return {"vit": vit, "clip": clip, "bert": bert, "bare": bare, "clip-image-text": both, "root": root}


def images(n: int = 5, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, 20, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", ["vit", "clip"])
def test_embedding_is_the_models_own_forward_on_its_processors_output(models, family):
    from PIL import Image

    encoder = load_encoder(str(models[family]))
    x = images()
    got = embed_images(encoder, x, batch_size=2, progress=False, use_cache=False)
    pil = [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in x]
    with torch.no_grad():
        want = pooled(encoder.model(pixel_values=encoder.processor(images=pil, return_tensors="pt")["pixel_values"]))
    assert got.shape == (5, 32) and got.dtype == torch.float32
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.equal(got, embed_images(encoder, x, batch_size=2, progress=False, use_cache=False))


def test_an_image_text_model_embeds_with_its_vision_tower(models):
    encoder = load_encoder(str(models["clip-image-text"]))
    assert "input_ids" not in encoder.model.forward.__code__.co_varnames
    assert embed_images(encoder, images(), progress=False, use_cache=False).shape == (5, 32)


def test_second_call_is_a_cache_hit_and_new_images_or_weights_compute_again(models, tmp_path, monkeypatch):
    monkeypatch.setenv("FEWLABELS_CACHE", str(tmp_path / "cache"))
    encoder = load_encoder(str(models["vit"]))
    calls = []
    encoder.model.register_forward_hook(lambda *_: calls.append(1))
    first = embed_images(encoder, images(), batch_size=2, progress=False)
    assert len(calls) == 3
    again = load_encoder(str(models["vit"]))  # loaded anew: the key is the weights' content, not the object
    again.model.register_forward_hook(lambda *_: calls.append(1))
    assert torch.equal(embed_images(again, images(), batch_size=2, progress=False), first) and len(calls) == 3
    embed_images(again, images(seed=1), batch_size=2, progress=False)
    assert len(calls) == 6
    with torch.no_grad():  # other weights, saved with the same processor: a new key, computed afresh
        next(again.model.parameters()).add_(1.0)
    again.model.save_pretrained(tmp_path / "changed")
    again.processor.save_pretrained(tmp_path / "changed")
    changed = load_encoder(str(tmp_path / "changed"))
    changed.model.register_forward_hook(lambda *_: calls.append(1))
    assert changed.key != encoder.key
    assert not torch.equal(embed_images(changed, images(), batch_size=2, progress=False), first) and len(calls) == 9

def test_grayscale_becomes_rgb_as_the_processor_would(models):
    encoder = load_encoder(str(models["clip"]))
    gray = images(channels=1)
    assert torch.allclose(embed_images(encoder, gray, progress=False, use_cache=False),
                          embed_images(encoder, gray.repeat(1, 3, 1, 1), progress=False, use_cache=False), atol=1e-6)


def test_embed_dataset_with_encoder_writes_what_train_reads(models, tmp_path, capsys):
    folder = image_folder(tmp_path / "imgs", per_class=4, unlabeled=4)
    out = tmp_path / "emb.npz"
    code, stdout, err = run_main(["embed", folder, "--encoder", models["vit"], "--out", out], capsys)
    assert code == 0, err
    with np.load(out) as f:
        assert f["X"].shape == (12, 32) and sorted(f["classes"]) == ["a", "b"] and (f["y"] == -1).sum() == 4
    code, stdout, err = run_main(["train", "--dataset", out, "--model", "mlp", "--algorithm", "supervised",
                                  "--labels-per-class", "2", "--iterations", "2", "--batch-size", "4", "--eval-every", "2",
                                  "--out", tmp_path / "run", "--quiet"], capsys)
    assert code == 0, err
    assert (tmp_path / "run").is_dir()


# ---------------------------------------------------------------- bad inputs: one sentence, exit 2, nothing written

def _no_transformers(monkeypatch, models):
    monkeypatch.setitem(sys.modules, "transformers", None)
    return str(models["vit"]), ("pip install 'fewlabels[foundation]'",)


def _hub_name_offline(monkeypatch, models):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(models["root"] / "empty-hf-home"))
    return "fewlabels-tests/no-such-encoder", ("HF_HUB_OFFLINE", "save_pretrained", "local")


def _not_a_model_folder(monkeypatch, models):
    return str(models["root"]), ("not a model folder",)


def _text_only_model(monkeypatch, models):
    return str(models["bert"]), ("not an image model", "BertModel")


def _no_image_processor(monkeypatch, models):
    return str(models["bare"]), ("no image processor",)


def _a_file(monkeypatch, models):
    return str(models["vit"] / "config.json"), ("is a file, not a model folder",)


def _neither_folder_nor_id(monkeypatch, models):
    return "no such/thing here", ("neither a model folder nor a Hugging Face model id",)


def _empty(monkeypatch, models):
    return "", ("--encoder is empty",)


CASES = [_no_transformers, _hub_name_offline, _not_a_model_folder, _text_only_model, _no_image_processor, _a_file,
         _neither_folder_nor_id, _empty]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__.strip("_"))
def test_bad_encoder_is_one_sentence_exit_2_and_leaves_nothing(models, tmp_path, monkeypatch, capsys, case):
    folder = image_folder(tmp_path / "imgs")
    encoder, fragments = case(monkeypatch, models)
    before = snapshot(tmp_path)
    code, out, err = run_main(["embed", folder, "--encoder", encoder, "--out", tmp_path / "emb.npz"], capsys)
    assert_one_line_error(code, out, err, fragments)
    assert snapshot(tmp_path) == before


def test_hub_load_sets_offline_unless_opted_in(monkeypatch):
    import os

    from fewlabels.foundation.loading import _offline_unless_opted_in

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with _offline_unless_opted_in():
        assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert "HF_HUB_OFFLINE" not in os.environ
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with _offline_unless_opted_in():
        assert os.environ["HF_HUB_OFFLINE"] == "0"


def test_suggest_with_encoder_picks_on_its_embeddings(models, tmp_path, capsys):
    folder = image_folder(tmp_path / "imgs", per_class=4, unlabeled=6)
    out = tmp_path / "picks.csv"
    code, stdout, err = run_main(["suggest", "--dataset", folder, "--budget", "2", "--encoder", models["clip"],
                                  "--out", out], capsys)
    assert code == 0, err
    assert f"embeddings of {models['clip']}" in stdout and len(out.read_text().splitlines()) >= 3


def test_suggest_refuses_encoder_with_from(models, tmp_path, capsys):
    folder = image_folder(tmp_path / "imgs")
    before = snapshot(tmp_path)
    code, out, err = run_main(["suggest", "--dataset", folder, "--budget", "1", "--encoder", models["vit"],
                               "--from", tmp_path / "run", "--out", tmp_path / "picks.csv"], capsys)
    assert_one_line_error(code, out, err, ("--encoder and --from",))
    assert snapshot(tmp_path) == before


def test_check_labels_with_encoder_ranks_the_runs_labels_on_its_embeddings(models, tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = run_main(["train", "--dataset", "digits", "--labels-per-class", "2", "--iterations", "2",
                             "--batch-size", "8", "--uratio", "1", "--eval-every", "2", "--out", run, "--quiet"], capsys)
    assert code == 0, err
    code, stdout, err = run_main(["check-labels", run, "--encoder", models["vit"], "--out", tmp_path / "c.csv"], capsys)
    assert code == 0, err
    assert len((tmp_path / "c.csv").read_text().splitlines()) == 21


def test_an_embedding_of_hours_says_so_before_it_runs_on_even_without_a_progress_bar(capsys):
    """The estimate after the second batch (a setting that runs for hours is warned about, with the estimate);
    a short one says nothing without a progress bar, and a few minutes are said once beside the bar."""
    from types import SimpleNamespace

    from fewlabels.foundation.embedding import say_if_long

    encoder = SimpleNamespace(name="facebook/dinov2-base")
    say_if_long(encoder, per_image_s=2.0, images_left=10_000, progress=False)
    line = capsys.readouterr().err
    assert "5.6 h left" in line and "10,000 images" in line and "smaller encoder" in line
    say_if_long(encoder, per_image_s=0.5, images_left=1_000, progress=False)  # 8 min, no bar: the bar would say it
    assert capsys.readouterr().err == ""
    say_if_long(encoder, per_image_s=0.5, images_left=1_000, progress=True)
    said = capsys.readouterr().err
    assert "9 min left" in said and "smaller encoder" not in said
    say_if_long(encoder, per_image_s=0.001, images_left=1_000, progress=True)
    assert capsys.readouterr().err == ""
