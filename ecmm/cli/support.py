"""``ecmm support "MESSAGE" [--image PATH] [--json]``: answer a customer message like a first-line agent.

Prints ``{intent, confidence, in_scope, answer, product}``. The intent classifier (MiniLM fine-tuned
end to end with a softmax head, probabilities temperature-scaled and a rejection threshold chosen
on the validation split) is trained on first use and cached (:mod:`ecmm.service.assistant`);
later calls only load it. Notices and progress go to stderr, so ``--json`` prints only JSON.
The message and the photo are checked like the server's (:mod:`ecmm.validation`). With ``--image``
the product is identified in the shop's catalog (``--catalog CSV`` for your own) by photo search.
"""

from __future__ import annotations

import argparse
import json

from ecmm.app import LIMITS
from ecmm.cli import add_shop_options, announce_shop

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Register ``support``."""
    parser = subparsers.add_parser("support", help="answer a customer-service message (optionally with a photo)")
    parser.add_argument("message", help=f"the customer's message, in quotes (at most {LIMITS.message_characters} "
                                        "characters)")
    parser.add_argument("--image", metavar="PATH", help="a photo of the product the message is about (PNG, JPEG, WebP)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_shop_options(parser)


def run(args: argparse.Namespace) -> int:
    """Answer the message; one-line errors (exit 2) for a bad message or an unreadable image."""
    from ecmm.app import load_support, reply_record
    from ecmm.validation import check_image_file, check_message

    message = check_message(args.message)
    image = check_image_file(args.image) if args.image else None
    announce_shop("support", None if image is not None else "no --image: the intent classifier answers alone")
    assistant = load_support(with_photos=image is not None)
    reply = assistant.reply(message, image=image)
    result = reply_record(reply)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    status = "in scope" if reply.in_scope else "handed to a human agent"
    print(f"intent:     {reply.intent}  (confidence {reply.confidence:.2f}, {status})")
    print(f"product:    {reply.product or '-'}")
    print(f"answer:     {reply.answer}")
    return 0
