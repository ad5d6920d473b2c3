"""``python -m ecmm.bench support [--json PATH]``: intent classifiers, few-shot, out-of-scope, FAQ, tickets.

Prints the tables and optionally writes::

    {"test": {MODEL: {"accuracy", "macro_f1", "train_seconds"}},
     "few_shot": {"1": {MODEL: {"accuracy"}}, "5": ..., "10": ..., "20": ...},
     "out_of_scope": {"precision", "recall"}, "faq": {"R@1", "R@3"},
     "tickets": {"product_top1", "product_top5", "intent_accuracy"},
     "calibration": {"temperature", "ece_before", "ece_after"}}

MODEL is ``tfidf``, ``frozen`` or ``finetuned`` (few-shot runs train ``tfidf`` and ``frozen``; fine-tuning
per few-shot run would multiply the CPU time). ``ECMM_QUICK=1`` shrinks epochs, shots and seeds.
Out-of-scope rejection and tickets use the fine-tuned classifier; ``calibration`` holds its test ECE
before and after temperature scaling fitted on validation, and the temperature. Tickets draw photos
of the shop's catalog (``--catalog CSV`` / ``--model SPEC`` for another) and need its fine-tuned
CLIP model (built on first use); ``--skip-tickets`` leaves them ``null``.
"""

from __future__ import annotations

import argparse
import time


def add_parser(subparsers) -> None:
    """Register ``support``."""
    parser = subparsers.add_parser("support", help="customer-service intents, few-shot, out-of-scope, FAQ, tickets")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--skip-tickets", action="store_true",
                        help="skip the photo + text tickets (they need the CLIP shop model of notebook 04)")
    parser.add_argument("--num-tickets", type=int, default=200, help="generated tickets to evaluate")
    from ecmm.cli import add_shop_options

    add_shop_options(parser)


def _tickets(classifier, label_names, num_tickets: int, seed: int) -> dict:
    from ecmm.app import load_search
    from ecmm.assets import active_shop
    from ecmm.service.tickets import evaluate_tickets, identify_products, make_tickets

    source = active_shop().source
    tickets, images = make_tickets(source.table(), source.photos(), num_tickets, seed=seed)
    matches = identify_products(load_search(progress=False, source=source), images, k=5)
    probabilities = classifier.predict_proba(tickets["message"].tolist())
    return evaluate_tickets(tickets, matches, probabilities, label_names)


def run(args: argparse.Namespace) -> int:
    """Measure and print; write JSON when ``--json`` is given."""
    from ecmm.config import get_settings, write_json
    from ecmm.data.intents import INTENTS, load_faq, load_intents
    from ecmm.device import seed_everything
    from ecmm.models import load_text_encoder
    from ecmm.service.confidence import expected_calibration_error
    from ecmm.service.evaluation import (calibrate, compare_classifiers, few_shot_curve, out_of_scope_report,
                                         split_intents)
    from ecmm.service.intents import encode_intents
    from ecmm.service.faq import FaqRetriever, evaluate_faq_retrieval
    from ecmm.service.intents import FineTuneConfig

    if args.num_tickets < 1:
        raise ValueError(f"--num-tickets must be >= 1, got {args.num_tickets}.")
    settings = get_settings()
    seed_everything(settings.seed)
    start = time.perf_counter()
    splits = split_intents(load_intents())
    encoder = load_text_encoder()
    config = FineTuneConfig(num_epochs=1 if settings.quick else 2)
    cache: dict = {}  # text -> frozen embedding, shared by the frozen runs
    table, classifiers = compare_classifiers(encoder, splits, INTENTS, config, seed=settings.seed,
                                             embedding_cache=cache)
    print("Intent classification, template-disjoint test split:")
    print(table.round(3).to_string(), "\n")

    shots = (1, 5) if settings.quick else (1, 5, 10, 20)
    curve = few_shot_curve(encoder, splits, INTENTS, shots=shots, seeds=(0,) if settings.quick else (0, 1, 2),
                           embedding_cache=cache)
    summary = curve.pivot_table(index="shots", columns="method", values="accuracy", aggfunc="mean")
    print("Few-shot test accuracy (mean over seeds):")
    print(summary.round(3).to_string(), "\n")

    calibrated = calibrate(classifiers["finetuned"], splits)
    truth = encode_intents(splits["test"]["intent"], INTENTS)
    ece = {}
    for when, model in (("ece_before", classifiers["finetuned"]), ("ece_after", calibrated)):
        probabilities = model.predict_proba(splits["test"]["text"].tolist())
        ece[when] = expected_calibration_error(probabilities.max(axis=1), probabilities.argmax(axis=1) == truth)
    calibration = {"temperature": calibrated.temperature, **ece}
    print(f"Calibration (fine-tuned, temperature {calibrated.temperature:.3f} fitted on validation): "
          f"test ECE {ece['ece_before']:.3f} -> {ece['ece_after']:.3f}")
    rejection = out_of_scope_report(classifiers["finetuned"], splits)
    print(f"Out-of-scope rejection (fine-tuned, threshold {rejection['threshold']:.3f} chosen on validation): "
          f"precision {rejection['precision']:.3f}, recall {rejection['recall']:.3f}, "
          f"in-scope kept {rejection['in_scope_kept']:.3f}")
    retriever = FaqRetriever(encoder, load_faq())
    faq = evaluate_faq_retrieval(retriever, splits["test"]["text"].tolist(), splits["test"]["intent"])
    print(f"FAQ retrieval: R@1 {faq['R@1']:.3f}, R@3 {faq['R@3']:.3f}")
    tickets = None
    if not args.skip_tickets:
        tickets = _tickets(classifiers["finetuned"], INTENTS, args.num_tickets, settings.seed)
        print("Photo + text tickets: " + ", ".join(f"{k} {v:.3f}" for k, v in tickets.items()))
    print(f"({time.perf_counter() - start:.0f} s, {'quick' if settings.quick else 'full'} mode)")

    if args.json:
        results = {
            "test": {name: {key: float(row[key]) for key in ("accuracy", "macro_f1", "train_seconds")}
                     for name, row in table.iterrows()},
            "few_shot": {str(k): {method: {"accuracy": float(summary.loc[k, method])} for method in summary.columns}
                         for k in summary.index},
            "out_of_scope": {"precision": rejection["precision"], "recall": rejection["recall"]},
            "faq": {"R@1": faq["R@1"], "R@3": faq["R@3"]},
            "tickets": tickets,
            "calibration": calibration,
        }
        write_json(args.json, results)
        print(f"wrote {args.json}")
    return 0
