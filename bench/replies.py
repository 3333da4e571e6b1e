"""How well the reply rules read intent: `python -m bench replies`.

The labelled set is in tests/fixtures/replies/*.yaml: replies written for the tests
in several languages, each judged as written and once more inside a wrapper a real
reply comes in (quoted history that holds trap phrases of our own cold email, a
signature with an address and a phone's footer, or a forwarded-style header block).
Prints per-class precision and recall, the opt-out figures (``unsubscribe`` and
``not_interested`` taken together) and how many stated return dates were read right.
Runs in-process, no services: a pure function over text (inbox/intent.py).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from inbox.intent import OPT_OUT, IntentClass, judge

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "replies"
RECEIVED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday: what relative dates count from
OWN_DOMAIN = "sender.example.com"

_ORIGINAL = (
    "Hi Pat,\n\nAre you interested in a quick call next Tuesday at 10am? We help teams like yours"
    " book more meetings.\nIf this is not relevant, reply 'unsubscribe' and I will remove you from"
    " my list.\n\nBest,\nAlex"
)
_WROTE = {
    "en": "On Mon, 2 Mar 2026 at 09:12, Alex Sender <alex@sender.example.com> wrote:",
    "de": "Am 02.03.2026 um 09:12 schrieb Alex Sender <alex@sender.example.com>:",
    "fr": "Le lun. 2 mars 2026 à 09:12, Alex Sender <alex@sender.example.com> a écrit :",
    "es": "El lun, 2 mar 2026 a las 9:12, Alex Sender (<alex@sender.example.com>) escribió:",
}
_FOOTER = {
    "en": "Sent from my iPhone", "de": "Von meinem iPhone gesendet", "fr": "Envoyé de mon iPhone",
    "es": "Enviado desde mi iPhone",
}
_SIGNATURE = "--\nPat Prospect\nHead of Operations | Acme\npat@acme.example.org | +49 30 1234567\n"


@dataclass(frozen=True)
class Sample:
    text: str
    expected: IntentClass
    language: str
    wrapper: str
    return_date: date | None
    referred: str | None


def _quoted(body: str, lang: str) -> str:
    quoted = "\n".join("> " + line if line else ">" for line in _ORIGINAL.splitlines())
    return f"{body}\n\n{_WROTE.get(lang, _WROTE['en'])}\n{quoted}\n"


def _signed(body: str, lang: str) -> str:
    return f"{body}\n\n{_SIGNATURE}\n{_FOOTER.get(lang, _FOOTER['en'])}\n"


def _outlook(body: str, lang: str) -> str:
    return (f"{body}\n\n________________________________\nFrom: Alex Sender <alex@sender.example.com>\n"
            f"Sent: Monday, March 2, 2026 9:12 AM\nTo: Pat <pat@acme.example.org>\n"
            f"Subject: Quick question\n\n"
            f"{_ORIGINAL}\n")


_WRAPPERS = (("quoted", _quoted), ("signature", _signed), ("outlook", _outlook))


def load(corpus: Path = CORPUS) -> list[Sample]:
    """Every body as written, and each once more in one wrapper (in turn)."""
    samples: list[Sample] = []
    n = 0
    for path in sorted(corpus.glob("*.yaml")):
        lang = path.stem if path.stem in _WROTE else "other"
        for entry in yaml.safe_load(path.read_text("utf-8")):
            samples += list(_samples(entry, lang, n))
            n += 1
    return samples


def _samples(entry: dict[str, Any], lang: str, n: int) -> list[Sample]:
    expected = IntentClass(entry["class"])
    text = str(entry["text"])
    name, wrap = _WRAPPERS[n % len(_WRAPPERS)]
    back = entry.get("return")
    return [Sample(body, expected, lang, how, back, entry.get("referred"))
            for how, body in (("plain", text), (name, wrap(text, lang)))]


@dataclass
class Figures:
    samples: int
    precision: dict[str, float]
    recall: dict[str, float]
    support: dict[str, int]
    opt_out_precision: float
    opt_out_recall: float
    dates_stated: int
    dates_right: int
    referrals_with_address: int
    referrals_right: int
    mistakes: list[str]
    ms_per_reply: float


def _ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def measure(samples: list[Sample]) -> Figures:
    found: list[tuple[Sample, Any]] = []
    started = time.perf_counter()
    for s in samples:
        found.append((s, judge(s.text, received_at=RECEIVED, own_domain=OWN_DOMAIN)))
    elapsed = time.perf_counter() - started
    true_pos: Counter[str] = Counter()
    said: Counter[str] = Counter()
    support: Counter[str] = Counter()
    mistakes = []
    for s, got in found:
        support[s.expected] += 1
        said[got.kind] += 1
        if got.kind is s.expected:
            true_pos[s.expected] += 1
        else:
            mistakes.append(f"{s.language}/{s.wrapper}: expected {s.expected}, got {got.kind}"
                            f" ({got.reason}): {s.text.splitlines()[0][:70]}")
    opt_said = sum(1 for _, g in found if g.kind in OPT_OUT)
    opt_true = sum(1 for s, _ in found if s.expected in OPT_OUT)
    opt_right = sum(1 for s, g in found if g.kind in OPT_OUT and s.expected in OPT_OUT)
    dated = [(s, g) for s, g in found if s.return_date is not None]
    referred = [(s, g) for s, g in found if s.referred is not None]
    for s, g in dated:
        if g.return_date != s.return_date:
            mistakes.append(f"{s.language}/{s.wrapper}: return {s.return_date}, read {g.return_date}:"
                            f" {s.text.splitlines()[0][:70]}")
    classes = [c.value for c in IntentClass]
    return Figures(
        samples=len(samples),
        precision={c: _ratio(true_pos[c], said[c]) for c in classes},
        recall={c: _ratio(true_pos[c], support[c]) for c in classes},
        support={c: support[c] for c in classes},
        opt_out_precision=_ratio(opt_right, opt_said), opt_out_recall=_ratio(opt_right, opt_true),
        dates_stated=len(dated), dates_right=sum(1 for s, g in dated if g.return_date == s.return_date),
        referrals_with_address=len(referred),
        referrals_right=sum(1 for s, g in referred if g.referred == s.referred),
        mistakes=mistakes, ms_per_reply=1000 * elapsed / max(1, len(samples)),
    )


def report(figures: Figures, show_mistakes: bool = True) -> str:
    lines = [f"{figures.samples} replies, {figures.ms_per_reply:.2f} ms each", "",
             f"{'class':<16}{'precision':>10}{'recall':>8}{'n':>6}"]
    for c in figures.precision:
        lines.append(f"{c:<16}{figures.precision[c]:>10.3f}{figures.recall[c]:>8.3f}{figures.support[c]:>6}")
    lines += ["", f"opt-out (unsubscribe + not_interested): precision {figures.opt_out_precision:.3f},"
                  f" recall {figures.opt_out_recall:.3f}",
              f"return dates right: {figures.dates_right}/{figures.dates_stated}"
              f" ({_ratio(figures.dates_right, figures.dates_stated):.1%})",
              f"referred addresses right: {figures.referrals_right}/{figures.referrals_with_address}"]
    if show_mistakes and figures.mistakes:
        lines += ["", "mistakes:", *("  " + m for m in figures.mistakes)]
    return "\n".join(lines)
