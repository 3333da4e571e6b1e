"""What an SMTP reply means for a send: classified on the basic code, the
enhanced status code (RFC 3463) and the markers big providers put in the text.

The classes decide what happens next (docs/decisions/0021-send-outcomes-table.md):
- SOFT_BOUNCE: retry this recipient later (5 min, 30 min, 2 h), then fail.
- HARD_BOUNCE: the address is gone (5.1.x, 5.2.1, or wording that says so): never
  retry; suppress the prospect. Nothing else is: a content or virus rejection, a
  system status (x.3.x) or a full mailbox says nothing about the address.
- THROTTLED: not the recipient's fault; back off the host, keep the attempts.
- SENDER_PROBLEM / QUOTA: pause the mailbox and alert; never blame the recipient.
- CONNECTION: no usable reply; retry and feed the host's circuit breaker.

Where a reply could mean either "the recipient" or "the sender", the rules lean
to the sender: suppressing prospects one by one because of our own reputation
or DNS would silently burn a list, while a wrongly paused mailbox is loud and
one `resume` away.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class ReplyClass(StrEnum):
    ACCEPTED = "accepted"
    SOFT_BOUNCE = "soft_bounce"
    HARD_BOUNCE = "hard_bounce"
    THROTTLED = "throttled"
    SENDER_PROBLEM = "sender_problem"
    QUOTA = "quota"
    CONNECTION = "connection"


@dataclass(frozen=True)
class SmtpReply:
    code: int
    text: str

    @property
    def enhanced(self) -> str | None:
        return enhanced_status(self.text)

    @property
    def reply_class(self) -> ReplyClass:
        return classify_reply(self.code, self.text)


# "4.7.28", not part of an IP address or of Yahoo's "4.16.55.1" trailer.
_ENHANCED = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?!\.?\d)")


def enhanced_status(text: str) -> str | None:
    """The first enhanced status code in a reply's text, e.g. "5.1.1"."""
    match = _ENHANCED.search(text)
    return match.group(1) if match else None


def _words(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# Provider markers: stable ids that say more than the codes around them.
_YAHOO_DEFERRED = re.compile(r"\bTSS04\b")  # 421 4.7.0 [TSS04] temporarily deferred
_MICROSOFT_BUSY = re.compile(r"\bS775\b")  # 451 4.7.500 Server busy ... (S775)
_MICROSOFT_BLOCK_LIST = re.compile(r"\bS31(40|50)\b")  # 550 5.7.1 ... our block list (S3150)
# Exchange Online's submission store; STOREDRV.Deliver is the recipient's store (a full
# mailbox there is theirs, not our sending quota).
_STOREDRV = re.compile(r"STOREDRV(?!\.Deliver)", re.IGNORECASE)
_SEND_AS_DENIED = _words(r"SendAsDenied")
# The mailbox's own sending allowance, not the recipient's mailbox quota ("over quota").
_SENDING_QUOTA = _words(r"sending (limit|quota)|daily .{0,30}limit|RefuseQuota|RateLimitExceeded")
# The recipient's mailbox is full: "exceeds quota", "quota exceeded", "storage full".
_MAILBOX_FULL = _words(
    r"mailbox (is )?full|over ?quota|storage allocation|insufficient storage|storage (is )?full"
    r"|exceed(s|ed)? (the |its |his |her |their )?(storage |disk |mailbox )?quota"
    r"|quota (exceeded|full)|mailbox size limit"
    r"|mailbox\b[^.;\n]{0,60}\bis full"  # 551 ... the destination mailbox of ... is full
)
# The address is gone: the wording of 5.1.x / 5.2.1 replies, for those sent without a code.
_GONE_WORDING = _words(
    r"no such (user|mailbox|recipient|address|account)|(user|recipient|mailbox|address|account)"
    r" (is )?(unknown|not found|does ?n[o']t exist|not exist)|unknown (user|recipient|mailbox|address)"
    r"|does ?n[o']t exist|mailbox unavailable|mailbox not found|no mailbox"
    r"|(account|mailbox|address) (has been |is )?(disabled|deactivated|closed|suspended)"
    r"|invalid (recipient|mailbox)|RecipientNotFound|RESOLVER\.ADR|address couldn't be found"
    r"|wasn't found at"
)
# What the message holds, not who it is for: a virus, content or header rejected.
_CONTENT_WORDING = _words(r"virus|malware|content (rejected|refused|not accepted)|message content"
                          r"|invalid header|attachment")
_GREYLISTED = _words(r"gr[ae]y ?list")
_SENDER_WORDING = _words(
    r"sender|relay|spam|unsolicited|reputation|blocked|block ?list|blacklist|denylist|banned"
)
_RECIPIENT_WORDING = _words(r"recipient|mailbox|user")
_THROTTLE_WORDING = _words(
    r"rate.?limit|throttl|too many (concurrent )?(connections|sessions|messages)|try again later"
)

# Details (subject.detail of the enhanced code) about the mailbox's login.
_LOGIN_DETAILS = {"7.8", "7.9", "7.11", "7.57", "7.139"}
# Details about the sending domain's or host's authentication: SPF (7.23, Gmail 7.27),
# PTR (7.25), DMARC (7.26, 7.32, Microsoft 7.509), DKIM (Gmail 7.30), TLS (Gmail 7.29),
# Microsoft's authentication level (7.515). Gmail also sends them as 4xx "rate limited"
# replies; they are still the sender's DNS to fix, and retrying only spends reputation,
# so both classes pause the mailbox.
_DOMAIN_AUTH_DETAILS = {"7.23", "7.25", "7.26", "7.27", "7.29", "7.30", "7.32", "7.509", "7.515"}
# Basic codes of refused or missing authentication: 530 auth required (also
# "must issue STARTTLS first"), 534 mechanism too weak / log in via browser (Gmail),
# 535 credentials invalid, 538 encryption required.
_AUTH_CODES = {530, 534, 535, 538}


@dataclass(frozen=True)
class _Reply:
    code: int
    text: str
    detail: str | None  # "1.1" of "5.1.1"; the class digit comes from the basic code

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    def has(self, pattern: re.Pattern[str]) -> bool:
        return pattern.search(self.text) is not None


def says_gone(text: str) -> bool:
    """The text says the address is gone (user unknown, mailbox disabled, ...)."""
    return _GONE_WORDING.search(text) is not None and _MAILBOX_FULL.search(text) is None


def says_content(text: str) -> bool:
    """The text rejects the message's content (virus, content, header), not the address."""
    return _CONTENT_WORDING.search(text) is not None


def classify_reply(code: int, text: str) -> ReplyClass:
    """Classify one SMTP reply; the first rule that matches wins."""
    if 200 <= code < 300:
        return ReplyClass.ACCEPTED
    if not 400 <= code < 600:
        return ReplyClass.CONNECTION  # no final reply at all (malformed, 3xx out of place)
    enhanced = enhanced_status(text)
    # RFC 3463: the basic code decides permanence; a mismatching class digit is ignored.
    reply = _Reply(code, text, enhanced[2:] if enhanced else None)
    for rule in (_provider_marker, _quota, _authentication, _recipient, _temporary, _permanent):
        found = rule(reply)
        if found is not None:
            return found
    raise AssertionError("unreachable: _permanent classifies every 5xx")


def _provider_marker(reply: _Reply) -> ReplyClass | None:
    if reply.has(_YAHOO_DEFERRED) or reply.has(_MICROSOFT_BUSY):
        return ReplyClass.THROTTLED
    if reply.has(_MICROSOFT_BLOCK_LIST):
        return ReplyClass.SENDER_PROBLEM
    return None


def _quota(reply: _Reply) -> ReplyClass | None:
    # Exchange Online refuses submissions with 5.2.0 STOREDRV...; SendAsDenied means
    # the mailbox may not use this From address, the rest are its sending limits.
    if reply.has(_STOREDRV):
        return ReplyClass.SENDER_PROBLEM if reply.has(_SEND_AS_DENIED) else ReplyClass.QUOTA
    # Gmail: 550 5.4.5 Daily user sending limit exceeded.
    if reply.detail == "4.5" or reply.has(_SENDING_QUOTA):
        return ReplyClass.QUOTA
    return None


def _authentication(reply: _Reply) -> ReplyClass | None:
    if reply.code in _AUTH_CODES or reply.detail in _LOGIN_DETAILS:
        return ReplyClass.SENDER_PROBLEM
    if reply.detail in _DOMAIN_AUTH_DETAILS:
        return ReplyClass.SENDER_PROBLEM
    return None


def _recipient(reply: _Reply) -> ReplyClass | None:
    # x.1.7 / x.1.8: our own MAIL FROM address or its domain is bad.
    if reply.detail in ("1.7", "1.8"):
        return ReplyClass.SENDER_PROBLEM
    # Mailbox full (x.2.2) is often temporary even when sent as 5xx: retry, don't suppress.
    # A bare 552 is RFC 5321's "exceeded storage allocation": the same.
    if reply.detail == "2.2" or reply.has(_MAILBOX_FULL) or (reply.code == 552 and reply.detail is None):
        return ReplyClass.SOFT_BOUNCE
    # x.3.x is the receiving system (5.3.4 too big, 5.3.5 system config error) and
    # x.6.x the message's content: neither says anything about the address.
    if reply.detail is not None and reply.detail.startswith(("3.", "6.")):
        return ReplyClass.SOFT_BOUNCE if reply.permanent else None
    # 5.1.x bad mailbox or domain (5.1.10: Microsoft RecipientNotFound / null MX),
    # 5.2.1 mailbox disabled.
    if reply.permanent and reply.detail is not None:
        if reply.detail.startswith("1.") or reply.detail == "2.1":
            return ReplyClass.HARD_BOUNCE
    return None


def _temporary(reply: _Reply) -> ReplyClass | None:
    if reply.permanent:
        return None
    # Greylisting (often 4.7.1) clears within minutes for this sender/recipient pair:
    # the soft-bounce retry after 5 min is what it asks for.
    if reply.has(_GREYLISTED):
        return ReplyClass.SOFT_BOUNCE
    # 421 closes the channel (busy, too many connections); 4.7.x is policy deferral
    # of the sending host (Gmail 4.7.0 / 4.7.28 unusual rate, Microsoft 4.7.650).
    if reply.code == 421 or (reply.detail or "").startswith("7."):
        return ReplyClass.THROTTLED
    # Without an enhanced code only the wording tells a busy host from a busy mailbox.
    if reply.detail is None and reply.has(_THROTTLE_WORDING):
        return ReplyClass.THROTTLED
    # The rest is about this recipient or message: 4.2.1 mailbox busy or receiving
    # too fast (Gmail), 4.3.x, 4.4.x, 4.5.3 too many recipients, bare 450/451/452.
    return ReplyClass.SOFT_BOUNCE


def _permanent(reply: _Reply) -> ReplyClass:
    # Exchange recipient restrictions (RESOLVER.RST.NotAuthorized ...) are the recipient's.
    if "RESOLVER.RST" in reply.text:
        return ReplyClass.HARD_BOUNCE
    # Spam, reputation, block lists, relaying: about us, whatever the code says.
    if reply.has(_SENDER_WORDING):
        return ReplyClass.SENDER_PROBLEM
    # 5.7.x is security or policy: the recipient's only when it says so.
    if (reply.detail or "").startswith("7."):
        if reply.has(_RECIPIENT_WORDING):
            return ReplyClass.HARD_BOUNCE
        return ReplyClass.SENDER_PROBLEM
    # The rest is a bad address only when its wording says so ("No such user here");
    # a virus or content rejection, or a bare 550/554 that says nothing, is not: retried
    # as a soft bounce, then failed, never listed (issue 22: only a gone address is).
    if reply.has(_GONE_WORDING) and not reply.has(_CONTENT_WORDING):
        return ReplyClass.HARD_BOUNCE
    return ReplyClass.SOFT_BOUNCE
