"""Recipients' working time: their zone, their working days and hours, their holidays
(issue 23, docs/decisions/0051). Pure functions of aware instants and IANA data; the
claim (store/open_work.py) asks them when each prospect may be sent."""
