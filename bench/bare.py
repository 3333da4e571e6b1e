"""The ceiling: the same messages, built the same way (mail.message.build_message),
sent by a bare aiosmtplib loop with no Temporal, no ledger and no limits.

One connection per mailbox, one transaction at a time on each, as the engine's
transport does. Run as its own process (like a worker) so it does not share
the provider's event loop:

    python -m bench.bare --port 2525 --prefix bench-x --mailboxes 20 --messages 5000

Prints one JSON line: {"sent": N, "seconds": S}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiosmtplib

from bench.seed import BODY, SUBJECT, mailbox_email, prospect_email
from mail.message import OutgoingMail, build_message, message_id_for
from specs.templates import render


def outgoing(prefix: str, campaign_id: str, mailbox_id: str, i: int) -> OutgoingMail:
    fields = {"email": prospect_email(prefix, i), "first_name": f"P{i}"}
    sender = mailbox_email(mailbox_id)
    return OutgoingMail(
        from_address=sender, to_address=fields["email"],
        subject=render(SUBJECT, fields), body=render(BODY, fields),
        message_id=message_id_for(campaign_id, 1, i, sender.rsplit("@", 1)[1]),
    )


async def send_all(port: int, prefix: str, campaign_id: str, mailbox_id: str, indexes: range) -> int:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="bench.localhost")
    await smtp.connect()
    sent = 0
    try:
        for i in indexes:
            mail = outgoing(prefix, campaign_id, mailbox_id, i)
            await smtp.sendmail(mail.from_address, [mail.to_address], build_message(mail))
            sent += 1
    finally:
        await smtp.quit()
    return sent


async def main(args: argparse.Namespace) -> None:
    boxes = [f"{args.prefix}-mb{k}" for k in range(args.mailboxes)]
    started = time.monotonic()
    counts = await asyncio.gather(*(
        send_all(args.port, args.prefix, args.campaign, box, range(k, args.messages, len(boxes)))
        for k, box in enumerate(boxes)
    ))
    print(json.dumps({"sent": sum(counts), "seconds": time.monotonic() - started}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--campaign", default="cmp-bare")
    parser.add_argument("--mailboxes", type=int, required=True)
    parser.add_argument("--messages", type=int, required=True)
    asyncio.run(main(parser.parse_args()))
