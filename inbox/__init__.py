"""Reading each mailbox's inbox: IMAP (read-only), classifying what arrived, and acting
on replies, bounces, unsubscribes and complaints (issue 14, docs/decisions/0034-0036)."""
