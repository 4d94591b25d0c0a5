"""The answer-source check over a run's answers, at several shares (model-free).

Usage::

    python results/answers/scripts/answer_source_sweep.py CACHE/adapters-extraction-update-generation/scored.jsonl 0.34,0.5,0.67,1.0

Reads the answers a LoCoMo run gave (``scored.jsonl``: each question's prediction and the
memories listed for it) and applies :func:`memlora_engine.subjects.answer_source` as
``Memory.answer`` does after the generation call (``MemoryConfig.decline_other_source``):
an answer whose words come from another person's memory becomes "No information
available.". Prints, per share, category 5 declined, false refusals on categories 1-4 and
the LoCoMo F1 of categories 1-4, before and after. Run it on a run made with the check off
(``--decline-other-source off``): answers it already declined have nothing to read.
"""

from __future__ import annotations

import json
import sys

from memlora_engine.answering import NOT_IN_MEMORY
from memlora_engine.evaluation.metrics import locomo_score
from memlora_engine.subjects import answer_source


def main() -> None:
    rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
    shares = [float(x) for x in sys.argv[2].split(",")] if len(sys.argv) > 2 else [0.5]
    for share in shares:
        declined5 = before5 = refused = refused_before = answerable = unanswerable = 0
        f1_before = f1_after = 0.0
        for row in rows:
            prediction, category = row["prediction"], row["category"]
            reference = row["reference"] if category != 5 else None
            already = prediction.strip() == NOT_IN_MEMORY
            declined = already or answer_source(row["question"], prediction,
                                                [m["text"] for m in row["retrieved"]]).declines(share)
            if category == 5:
                unanswerable += 1
                before5 += already
                declined5 += declined
            else:
                answerable += 1
                refused_before += already
                refused += declined
                f1_before += locomo_score(prediction, reference, category)
                f1_after += locomo_score(NOT_IN_MEMORY if declined else prediction, reference, category)
        print(f"share {share:g}: category 5 declined {before5} -> {declined5} of {unanswerable} "
              f"({100 * declined5 / unanswerable:.1f} %); false refusals {refused_before} -> {refused} of "
              f"{answerable} ({100 * refused / answerable:.1f} %); LoCoMo F1 {f1_before / answerable:.3f} -> "
              f"{f1_after / answerable:.3f}")


if __name__ == "__main__":
    main()
