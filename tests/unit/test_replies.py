"""classify_reply on real-world replies (as aiosmtplib hands them over: the code,
then the text with each line's code stripped)."""

from __future__ import annotations

import pytest

from mail.replies import ReplyClass, SmtpReply, classify_reply, enhanced_status

A = ReplyClass.ACCEPTED
SOFT = ReplyClass.SOFT_BOUNCE
HARD = ReplyClass.HARD_BOUNCE
THROTTLED = ReplyClass.THROTTLED
SENDER = ReplyClass.SENDER_PROBLEM
QUOTA = ReplyClass.QUOTA
CONN = ReplyClass.CONNECTION

REPLIES: list[tuple[str, int, str, ReplyClass]] = [
    # (rule exercised, code, text, expected)
    ("2xx gmail", 250, "2.0.0 OK  1700000000 a1-20020a05600c000100b00 - gsmtp", A),
    ("2xx microsoft", 250, "2.6.0 <x@y> [InternalId=123] Queued mail for delivery", A),
    # Throttling
    ("yahoo TSS04 marker", 421,
     "4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume "
     "or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", THROTTLED),
    ("microsoft S775 marker", 451,
     "4.7.500 Server busy. Please try again later from [192.0.2.1]. (S775) "
     "[AM0PR01MB1234.eurprd01.prod.exchangelabs.com]", THROTTLED),
    ("gmail 421 4.7.28 unusual rate", 421,
     "4.7.28 [192.0.2.1 15] Our system has detected an unusual rate of unsolicited mail\n"
     "4.7.28 originating from your IP address. To protect our users from spam, mail sent\n"
     "4.7.28 from your IP address has been temporarily rate limited. - gsmtp", THROTTLED),
    ("gmail 421 4.7.0 try again later", 421, "4.7.0 Try again later, closing connection. - gsmtp",
     THROTTLED),
    ("421 without enhanced code", 421, "Too many concurrent SMTP connections; try again later.",
     THROTTLED),
    ("microsoft 4.7.650 reputation", 451,
     "4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP "
     "reputation.", THROTTLED),
    ("gmail 454 4.7.0 login attempts", 454,
     "4.7.0 Too many login attempts, please try again later.", THROTTLED),
    ("bare 4xx throttle wording", 450, "Too many connections, slow down", THROTTLED),
    # Soft bounces
    ("gmail 4.2.1 recipient receiving too fast", 450,
     "4.2.1 The user you are trying to contact is receiving mail at a rate that\n"
     "4.2.1 prevents additional messages from being delivered. Please resend your\n"
     "4.2.1 message at a later date. - gsmtp", SOFT),
    ("4.2.1 mailbox busy", 450, "4.2.1 Mailbox busy", SOFT),
    ("gmail 4.2.2 over quota", 452,
     "4.2.2 The email account that you tried to reach is over quota. - gsmtp", SOFT),
    ("gmail 5.2.2 over quota, still soft", 552,
     "5.2.2 The email account that you tried to reach is over quota. - gsmtp", SOFT),
    ("gmail 451 4.3.0", 451, "4.3.0 Mail server temporarily rejected message. - gsmtp", SOFT),
    ("4.4.x dns", 451, "4.4.0 DNS temporary failure", SOFT),
    ("postfix 4.1.1 unverified", 450,
     "4.1.1 <bob@example.org>: Recipient address rejected: unverified address", SOFT),
    ("postgrey", 450,
     "4.2.0 <bob@example.org>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/help/example.org.html", SOFT),
    ("greylisting on 4.7.1", 451, "4.7.1 Greylisting in action, please come back later", SOFT),
    ("bare 451", 451, "Requested action aborted: local error in processing", SOFT),
    ("gmail too many recipients", 452, "4.5.3 Your message has too many recipients. - gsmtp", SOFT),
    # Hard bounces
    ("gmail 5.1.1", 550,
     "5.1.1 The email account that you tried to reach does not exist. Please try\n"
     "5.1.1 double-checking the recipient's email address for typos or\n"
     "5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser - gsmtp", HARD),
    ("microsoft 5.1.10", 550,
     "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient bob@example.org not found by SMTP "
     "address lookup", HARD),
    ("gmail 5.2.1 disabled", 550,
     "5.2.1 The email account that you tried to reach is disabled. - gsmtp", HARD),
    ("yahoo 5.1.1 unknown user", 554, "5.1.1 <bob@yahoo.com>: Recipient address rejected: "
     "unknown user", HARD),
    ("5.1.2 bad domain", 550, "5.1.2 Bad destination system address", HARD),
    ("550 without enhanced code", 550, "No such user here", HARD),
    ("550 mailbox unavailable", 550, "Requested action not taken: mailbox unavailable", HARD),
    # Not the address (issue 22, item 4): the message, the receiving system, a full mailbox.
    ("5.3.4 too big", 552, "5.3.4 Message size exceeds fixed maximum message size", SOFT),
    ("5.6.x content", 554, "5.6.0 Message contains invalid header", SOFT),
    ("5.3.5 system config", 553, "5.3.5 system config error", SOFT),
    ("551 mailbox full", 551, "User not local; the destination mailbox of the user is full", SOFT),
    ("virus", 550, "Message rejected: contains a virus", SOFT),
    ("content", 554, "message content rejected", SOFT),
    ("bare 554", 554, "Transaction failed", SOFT),
    ("exchange recipient restriction", 550, "5.7.1 RESOLVER.RST.NotAuthorized; not authorized",
     HARD),
    ("5.7.1 about the recipient", 554,
     "5.7.1 <bob@example.org>: Recipient address rejected: Access denied", HARD),
    # Sender problems
    ("gmail 535 bad credentials", 535,
     "5.7.8 Username and Password not accepted. For more information, go to\n"
     "5.7.8 https://support.google.com/mail/?p=BadCredentials - gsmtp", SENDER),
    ("microsoft 535 smtp auth disabled", 535,
     "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
     SENDER),
    ("530 auth required", 530, "5.7.0 Authentication Required. - gsmtp", SENDER),
    ("microsoft 530 5.7.57", 530, "5.7.57 Client not authenticated to send mail.", SENDER),
    ("gmail 534 web login", 534,
     "5.7.9 Application-specific password required. Learn more at\n"
     "5.7.9 https://support.google.com/mail/?p=InvalidSecondFactor - gsmtp", SENDER),
    ("gmail 5.7.26 dmarc", 550,
     "5.7.26 Unauthenticated email from example.com is not accepted due to domain's\n"
     "5.7.26 DMARC policy. - gsmtp", SENDER),
    ("gmail 4.7.27 spf deferral is the sender's DNS", 421,
     "4.7.27 Your email has been rate limited because SPF authentication didn't pass\n"
     "4.7.27 for this message. - gsmtp", SENDER),
    ("gmail 5.7.30 dkim", 550, "5.7.30 This mail has been blocked because DKIM does not pass.",
     SENDER),
    ("microsoft 5.7.515", 550,
     "5.7.515 Access denied, sending domain example.com doesn't meet the required "
     "authentication level.", SENDER),
    ("microsoft S3150 block list", 550,
     "5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your "
     "Internet service provider since part of their network is on our block list (S3150).",
     SENDER),
    ("spamhaus", 554, "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using "
     "zen.spamhaus.org", SENDER),
    ("gmail 5.7.1 unsolicited", 550,
     "5.7.1 [192.0.2.1] Our system has detected that this message is likely unsolicited\n"
     "5.7.1 mail. To reduce the amount of spam sent to Gmail, this message has been\n"
     "5.7.1 blocked. - gsmtp", SENDER),
    ("relay denied", 554, "5.7.1 <bob@example.org>: Relay access denied", SENDER),
    ("yahoo TS03 permanent", 553,
     "5.7.1 [TS03] All messages from 192.0.2.1 will be permanently deferred; Retrying will "
     "NOT succeed. See https://postmaster.yahooinc.com/error-codes", SENDER),
    ("microsoft 5.7.708", 550,
     "5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.", SENDER),
    ("5.1.8 our sender domain", 553,
     "5.1.8 <jane@example.com>: Sender address rejected: Domain not found", SENDER),
    ("exchange send-as denied", 554,
     "5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; "
     "Failed to process message due to a permanent exception", SENDER),
    # Quota
    ("gmail 5.4.5", 550, "5.4.5 Daily user sending limit exceeded. For more information\n"
     "5.4.5 https://support.google.com/a/answer/166852 - gsmtp", QUOTA),
    ("exchange STOREDRV refuse quota", 554,
     "5.2.0 STOREDRV.Submission.Exception:OutboundSpamException; Failed to process message "
     "due to a permanent exception with message WASCL UserAction verdict is not None. "
     "Actual verdict is RefuseQuota, ShowTierUpgrade.", QUOTA),
    ("exchange recipient rate limit", 550,
     "5.5.0 Message rejected due to RecipientRateLimitExceeded", QUOTA),
    ("sending limit wording", 451, "4.3.0 Hourly sending limit exceeded, try later", QUOTA),
    # No reply at all
    ("malformed reply", -1, "Malformed SMTP response line: garbage", CONN),
]


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [case[1:] for case in REPLIES],
    ids=[case[0] for case in REPLIES],
)
def test_classify_reply_on_real_world_replies(code: int, text: str, expected: ReplyClass) -> None:
    assert classify_reply(code, text) is expected


def test_the_table_holds_at_least_25_real_world_replies() -> None:
    assert len(REPLIES) >= 25


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5.1.1 The email account that you tried to reach does not exist", "5.1.1"),
        ("#4.4.2 timeout", "4.4.2"),
        ("[TSS04] deferred - 4.16.55.1; see https://postmaster.yahooinc.com", None),
        ("Client host [192.0.2.5] blocked", None),
        ("Server busy 4.7.500 (S775)", "4.7.500"),
        ("sentence ends with 5.7.26.", "5.7.26"),
        ("No such user here", None),
    ],
)
def test_enhanced_status_finds_the_code_but_not_addresses(text: str, expected: str | None) -> None:
    assert enhanced_status(text) == expected


def test_basic_code_decides_permanence_when_the_class_digit_disagrees() -> None:
    assert classify_reply(550, "4.1.1 unknown user") is HARD
    assert classify_reply(450, "5.1.1 unknown user") is SOFT


def test_smtp_reply_exposes_enhanced_code_and_class() -> None:
    reply = SmtpReply(550, "5.1.1 no such user")
    assert reply.enhanced == "5.1.1"
    assert reply.reply_class is HARD
