"""localsmtp: an in-process SMTP server (aiosmtpd) and a misbehaving multi-host provider,
for the demo, `outreach dev`, tests and benchmarks. Production workers never import it."""
