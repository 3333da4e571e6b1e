"""What a person's reply means: one intent class, a confidence and a short reason.

Rules, no model and no outside service. The text is first cut to what the person
wrote this time (mail-parser-reply drops the quoted history in the header forms of
many mail programs, its signatures and disclaimers; quoted ``>`` lines and mobile
footers go too), then judged against phrase tables in the languages the
out-of-office subjects of inbox/classify.py cover (English, German, French,
Spanish, Italian, Dutch, Portuguese; Swedish and Polish for out-of-office only).
First match wins, in this order, so the stronger reading takes a mixed reply:

1. ``unsubscribe``: opt-out in words ("remove me", "stop emailing");
2. ``out_of_office``: an absence (with the return date when one is given);
3. ``referral``: names someone else to write to (with the address when given);
4. ``wrong_person``: not me, and no one named;
5. ``not_interested``;
6. ``meeting``: asks for or proposes a time;
7. ``interested``;
8. ``question``: a question mark or a question word, nothing above;
9. ``other``: nothing above, or a language the tables do not hold (low confidence).

The text itself is never returned or kept: the class, the confidence, a reason
naming the rule (never the words matched), and for the two classes that carry one,
the return date or the referred address (docs/decisions/0053).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from html.parser import HTMLParser

from mailparser_reply import EmailReplyParser

__all__ = ["Intent", "IntentClass", "judge", "latest_text"]

TEXT_LIMIT = 8_000  # characters of the latest reply judged: a reply's meaning is in its start
# Characters given to mail-parser-reply, after runs of blank lines are folded: its
# regular expressions are quadratic on some inputs (thousands of blank lines took
# seconds), and a stranger chooses the input (decision 0050: bounded cost per message).
PARSE_LIMIT = 6_000
_BLANK_RUNS = re.compile(r"\n[ \t\r\f\v]*(?:\n[ \t\r\f\v]*)+")


class IntentClass(StrEnum):
    INTERESTED = "interested"
    MEETING = "meeting"
    QUESTION = "question"
    NOT_INTERESTED = "not_interested"
    UNSUBSCRIBE = "unsubscribe"
    WRONG_PERSON = "wrong_person"
    REFERRAL = "referral"
    OUT_OF_OFFICE = "out_of_office"
    OTHER = "other"


# Opt-out intent: what `bench replies` measures the precision and recall of together.
OPT_OUT = frozenset({IntentClass.UNSUBSCRIBE, IntentClass.NOT_INTERESTED})


@dataclass(frozen=True)
class Intent:
    kind: IntentClass
    confidence: float
    reason: str  # the rule and language, e.g. "out_of_office phrase (de)": no words of the text
    language: str | None = None
    return_date: date | None = None  # out_of_office: the day the person is back, if stated
    referred: str | None = None  # referral: the address given, if one is


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.I | re.S)


# -- the phrase tables ------------------------------------------------------------
# Per class, per language. Kept short and specific: each alternative is a phrase a
# reply of that class says, not a word that also occurs in others.

_UNSUBSCRIBE = {
    "en": _rx(r"\bremove\s+(?:this|my)\s+(?:e-?mail\s+)?address\b",
              r"\bunsubscribe\s+me\b",
              r"\b(?:please\s+)?(?:remove|delete|take)\s+(?:me|my\s+(?:e-?mail|address|details|name))\b"
              r"(?:\s+(?:from|off))?",
              r"\bunsubscribe\b", r"\bstop\s+(?:e-?mailing|emails?|contacting|writing|sending|spamming)\b",
              r"\bdo\s*n[o']t\s+(?:e-?mail|contact|write\s+to)\s+me\b", r"\bopt(?:ing)?[- ]out\b",
              r"\btake\s+me\s+off\b", r"\bno\s+more\s+e-?mails\b", r"\bnever\s+(?:e-?mail|contact)\s+me\b",
              r"\bcease\s+(?:all\s+)?(?:contact|communication)", r"\bgdpr\b.{0,40}\b(?:delet|eras)"),
    "de": _rx(r"\b(?:aus|von)\s+(?:dem|ihrem|der|ihrer)\s+(?:verteiler|liste|newsletter)"
              r"\s+(?:nehmen|streichen|löschen|entfernen)",
              r"\bwiderspreche\b",
              r"\bkeine\s+(?:e-?mails|mails|nachrichten|werbung)\s+mehr\b",
              r"\bnehmen\s+sie\s+mich\s+(?:bitte\s+)?(?:aus|von)\b",
              r"\b(?:entfernen|löschen|streichen|austragen)\s+sie\s+mich\b",
              r"\bmich\s+(?:bitte\s+)?(?:aus|von)\s+(?:ihrem|ihrer|dem|der|diesem)\s+\w*"
              r"(?:verteiler|liste|newsletter)",
              r"\bkeine\s+(?:weiteren\s+)?(?:e-?mails|mails|nachrichten|kontaktaufnahme)",
              r"\b(?:schreiben|kontaktieren|mailen)\s+sie\s+mir\s+nicht\b",
              r"\bnicht\s+mehr\s+(?:kontaktieren|anschreiben|schreiben|mailen)",
              r"\bmich\s+nicht\s+mehr\s+(?:zu\s+)?(?:kontaktieren|anschreiben|anrufen|anmailen)",
              r"\blöschen\s+sie\s+(?:bitte\s+)?meine\s+(?:daten|adresse|e-?mail)",
              r"\babmelden\b", r"\bmeine\s+daten\s+löschen", r"\baustragen\b"),
    "fr": _rx(r"\bne\s+plus\s+m['’](?:écrire|envoyer|contacter)",
              r"\b(?:retirez|supprimez|effacez)\s+mon\s+(?:adresse|e-?mail|mail)",
              r"\bne\s+(?:veux|souhaite)\s+plus\s+(?:recevoir|être\s+contacté)",
              r"\b(?:retirez|supprimez|enlevez|effacez|désinscrivez)[- ]moi\b",
              r"\bme\s+(?:retirer|désinscrire|supprimer|désabonner|rayer)\b", r"\bdésinscri(?:re|ption|vez)",
              r"\bdésabonn", r"\bne\s+(?:me\s+)?(?:contactez|écrivez|envoyez)\s+plus\b",
              r"\bne\s+plus\s+(?:me\s+)?(?:contacter|écrire|recevoir)", r"\barrêtez\s+de\s+m['’]",
              r"\bplus\s+de\s+(?:mails|e-?mails|messages)\b"),
    "es": _rx(r"\bno\s+(?:deseo|quiero)\s+recibir\b",
              r"\bden(?:me)?\s+de\s+baja\b",
              r"\bquit(?:en|e|a)\s+mi\s+(?:correo|email|e-mail|dirección)",
              r"\b(?:elimín|elimin|borr|quít|quit|sáqu|saqu|dé|d)(?:e|en|a|ar)(?:me|nos)\b"
              r"(?:\s+de\s+(?:su|tu|la|vuestra)\s+(?:lista|base))?",
              r"\bdar(?:me)?\s+de\s+baja\b", r"\bbórr(?:en|e|a)me\b", r"\bdarme\s+de\s+baja\b",
              r"\bdejen?\s+de\s+(?:escribir|enviar|contactar)",
              r"\bno\s+(?:me\s+)?(?:escriban?|contacten?|envíen?|vuelvan?\s+a)", r"\bcancelar\s+(?:la"
                                                                                 r"\s+)?suscripci",
              r"\bno\s+quiero\s+recibir\s+más", r"\bbaja\s+de\s+(?:la|su)\s+lista"),
    "it": _rx(r"\b(?:rimuovetemi|cancellatemi|toglietemi|rimuovermi|cancellarmi)\b",
              r"\bnon\s+(?:contattatemi|scrivetemi)\b", r"\bsmettete\s+di\s+scriver"),
    "nl": _rx(r"\b(?:verwijder|haal)\s+mij\b", r"\buitschrijven\b", r"\bgeen\s+e-?mails\s+meer\b",
              r"\bniet\s+meer\s+(?:mailen|contacteren)"),
    "pt": _rx(r"\b(?:remova|removam|retire|tirem)[- ]me\b", r"\bdescadastr", r"\bnão\s+me\s+(?:enviem"
                                                                             r"|contactem)"),
}

_OUT_OF_OFFICE = {
    "en": _rx(r"\bout\s+of\s+(?:the\s+)?office\b", r"\b(?:i\s+am|i['’]m|i\s+will\s+be)\s+(?:currently\s+)?"
              r"(?:away|on\s+(?:annual\s+|parental\s+|maternity\s+|paternity\s+|sick\s+)?leave|on\s+holiday|"
              r"on\s+vacation|travell?ing|out\s+until|off\s+until|out\s+of\s+town|ooo)\b",
              r"\bon\s+(?:annual|parental|maternity|paternity)\s+leave\b", r"\blimited\s+access\s+to"
                                                                           r"\s+(?:my\s+)?e-?mail",
              r"\bautomatic\s+reply\b", r"\bauto(?:matic)?[- ]?reply\b", r"\bback\s+in\s+the\s+office\b",
              r"\bwill\s+(?:be\s+)?(?:back|return)\s+(?:on|in|to\s+the\s+office)\b",
              r"\baway\s+from\s+(?:the\s+office|my\s+desk)\b", r"\bcurrently\s+away\b"),
    "de": _rx(r"\babwesen", r"\bnicht\s+im\s+(?:büro|hause|haus)\b", r"\bau(?:ß|ss)er\s+haus\b",
              r"\bim\s+urlaub\b",
              r"\bin\s+(?:elternzeit|mutterschutz)\b", r"\bauf\s+(?:dienstreise|geschäftsreise)\b",
              r"\bwieder\s+(?:im\s+büro|erreichbar|da)\b",
              r"\bautomatische\s+antwort\b", r"\bbin\s+(?:ab|bis).{0,40}(?:nicht|urlaub|abwesend)"),
    "fr": _rx(r"\babsente?\b", r"\ben\s+(?:congés?|vacances|déplacement|congé\s+maternité)\b",
              r"\bhors\s+du\s+bureau\b", r"\bde\s+retour\s+(?:le|au\s+bureau|à\s+partir)",
              r"\bréponse\s+automatique\b", r"\bne\s+suis\s+pas\s+au\s+bureau"),
    "es": _rx(r"\bfuera\s+de\s+(?:la\s+)?oficina\b", r"\bde\s+vacaciones\b", r"\bausente\b",
              r"\bestaré\s+(?:de\s+vuelta|fuera)", r"\bregreso\s+el\b", r"\bvuelvo\s+el\b",
              r"\brespuesta\s+automática\b", r"\bde\s+(?:baja|permiso)\s+(?:por\s+)?(?:maternidad"
                                             r"|paternidad)?"
              r"\s*hasta"),
    "it": _rx(r"\bfuori\s+ufficio\b", r"\bin\s+ferie\b", r"\bassente\b", r"\brisposta\s+automatica\b",
              r"\bsarò\s+di\s+ritorno"),
    "nl": _rx(r"\bafwezig\b", r"\bniet\s+op\s+kantoor\b", r"\bmet\s+vakantie\b", r"\bautomatisch"
                                                                                 r"\s+antwoord\b"),
    "pt": _rx(r"\bfora\s+do\s+escritório\b", r"\bde\s+férias\b", r"\bresposta\s+automática\b"),
    "sv": _rx(r"\bfrånvar", r"\bpå\s+semester\b", r"\btillbaka\s+(?:den|på)\b"),
    "pl": _rx(r"\bpoza\s+biurem\b", r"\bna\s+urlopie\b", r"\bautomatyczna\s+odpowied"),
}

# Where the return date is said: the date phrase follows one of these.
_RETURN_CUE = {
    "en": _rx(r"\b(?:until|till|through|thru|returning(?:\s+on)?|return(?:s|ing)?\s+on|back\s+(?:in"
              r"\s+the\s+office\s+)?"
              r"(?:on|from)|back\s+in\s+the\s+office|back|return\s+to\s+the\s+office\s+on|"
              r"(?:will\s+)?return\s+(?:on)?)\s+(?:on\s+|the\s+)?"),
    "de": _rx(r"\b(?:bis\s+(?:einschließlich\s+|zum\s+|am\s+)?|ab\s+(?:dem\s+)?|am\s+(?=\d{1,2}\.)"
              r"|zurück\s+am\s+|wieder\s+"
              r"(?:im\s+büro\s+|erreichbar\s+|da\s+)?(?:am|ab)\s+(?:dem\s+)?)"),
    "fr": _rx(r"\b(?:jusqu['’]au\s+|jusqu['’]à\s+(?:lundi|mardi|mercredi|jeudi|vendredi)?|de\s+retour\s+"
              r"(?:le\s+|au\s+bureau\s+le\s+|à\s+partir\s+du\s+)|retour\s+(?:prévu\s+)?le\s+|au\s+)"),
    "es": _rx(r"\b(?:hasta\s+(?:el\s+)?|regreso\s+el\s+|vuelvo\s+el\s+|de\s+vuelta\s+el\s+|"
              r"a\s+partir\s+del\s+|estaré\s+de\s+vuelta\s+el\s+)"),
    "it": _rx(r"\b(?:fino\s+al(?:l['’])?\s*|di\s+ritorno\s+(?:il\s+)?|rientro\s+(?:il\s+)?)"),
    "nl": _rx(r"\b(?:tot\s+en\s+met\s+|tot\s+|terug\s+op\s+)"),
    "pt": _rx(r"\b(?:até\s+(?:o\s+dia\s+)?|retorno\s+(?:em|no\s+dia)\s+)"),
    "sv": _rx(r"\b(?:till\s+och\s+med\s+|tillbaka\s+(?:den\s+)?)"),
    "pl": _rx(r"\b(?:do\s+)"),
}

_WRONG_PERSON = {
    "en": _rx(r"\bnot\s+(?:involved\s+in|the\s+decision[- ]maker)\b",
              r"\b(?:i\s+(?:have\s+)?|i\s+am\s+|i[\'’]m\s+)retired\b",
              r"\b(?:isn[\'’]t|is\s+not)\s+(?:my|in\s+my)\s+(?:area|department|remit|responsibility|job)\b",
              r"\b(?:i\s+am|i['’]m)\s+not\s+(?:the\s+)?(?:right|correct|best|appropriate)\s+(?:person"
              r"|contact)",
              r"\bwrong\s+(?:person|contact|address|department)\b", r"\bnot\s+(?:my|in\s+my)\s+(?:area"
                                                                    r"|department|remit)",
              r"\bno\s+longer\s+(?:with|at|work(?:s|ing)?\s+(?:at|for))\b", r"\bleft\s+the\s+company\b",
              r"\bi\s+(?:don['’]t|do\s+not)\s+(?:handle|deal\s+with|work\s+on)\b",
              r"\bnot\s+responsible\s+for\b"),
    "de": _rx(r"\b(?:bin|ist)\s+(?:nicht|kein)\s+(?:der|die)?\s*(?:richtige|zuständige)",
              r"\bnicht\s+(?:zuständig|der\s+richtige\s+ansprechpartner)", r"\bfalsche[rn]?"
                                                                           r"\s+(?:ansprechpartner|person)",
              r"\bnicht\s+mehr\s+(?:im\s+unternehmen|bei\s+uns|für\s+\w+\s+tätig)"),
    "fr": _rx(r"\bpas\s+moi\s+qui\s+(?:gère|m[\'’]occupe|m[\'’]en\s+occupe|décide)\b",
              r"\bne\s+suis\s+pas\s+(?:la\s+bonne\s+personne|le\s+bon\s+interlocuteur|la\s+personne"
              r"\s+en\s+charge)",
              r"\bpas\s+(?:la\s+bonne\s+personne|le\s+bon\s+interlocuteur)", r"\bmauvais(?:e)?"
                                                                             r"\s+(?:personne|interlocuteur)",
              r"\bne\s+(?:travaille|fai[st])\s+plus\s+partie", r"\bne\s+m['’]occupe\s+pas\b"),
    "es": _rx(r"\bno\s+es\s+(?:de\s+)?mi\s+(?:competencia|área|responsabilidad)\b",
              r"\bno\s+soy\s+(?:la\s+persona|quien)\b",
              r"\bno\s+soy\s+(?:la\s+persona\s+(?:adecuada|indicada|correcta)|el\s+contacto\s+adecuado"
              r"|quien)",
              r"\bpersona\s+equivocada\b", r"\bya\s+no\s+trabaj", r"\bno\s+(?:me\s+encargo|es\s+mi\s+área)"),
    "it": _rx(r"\bnon\s+sono\s+la\s+persona\s+giusta\b", r"\bnon\s+(?:mi\s+occupo|lavoro\s+più)"),
    "nl": _rx(r"\bniet\s+de\s+juiste\s+persoon\b", r"\bwerk\s+(?:hier\s+)?niet\s+meer"),
    "pt": _rx(r"\bnão\s+sou\s+a\s+pessoa\s+(?:certa|indicada)"),
}

# A name: a capitalised word, read case-sensitively inside the case-blind tables.
_NAME = r"(?-i:[A-ZÀ-Ý][a-zà-ÿ]+)"
_ADDRESS = r"[\w.+-]+@[\w-]+\.[\w.-]+"
_REFERRAL = {
    "en": _rx(r"\bi['’]d\s+suggest\s+(?:reaching|contacting|talking|speaking|emailing|writing)\b",
              r"\b(?:speak|talk)\s+(?:to|with)\s+(?:our|my)\s+\w+",
              r"\breaching\s+out\s+to\b",
              r"\b(?:her|his|their)\s+(?:e-?mail|address)\s+is\b",
              r"\byou\s+(?:want|need|should)\s+to\s+(?:talk|speak|write)\s+to\b",
              rf"\b(?:contact|reach\s+out\s+to|talk\s+to|speak\s+(?:to|with)|write\s+to|e-?mail|get"
              rf"\s+in\s+touch\s+"
              rf"with|try|ask)\s+(?:my\s+colleague\s+|our\s+\w+\s+)?(?:{_NAME}|{_ADDRESS})",
              rf"\b(?:cc['’]?(?:ed|ing)|looping\s+in|copying)\s+(?:my\s+colleague\s+)?(?:{_NAME}|{_ADDRESS})",
              r"\bforwarded\s+(?:this|your\s+\w+)\s+to\b",
              r"\bthe\s+(?:right|best)\s+person\s+(?:is|would\s+be|for\s+this\s+is|to\s+(?:talk|speak)"
              r"\s+to\s+is)\b",
              rf"\b{_NAME}\s+(?:handles|is\s+responsible\s+for|looks\s+after|takes\s+care\s+of|is\s+the"
              rf"\s+one)\b"),
    "de": _rx(rf"\b(?:wenden\s+sie\s+sich\s+(?:bitte\s+)?an\s+|kontaktieren\s+sie\s+(?:bitte\s+)?"
              rf"|schreiben\s+sie\s+"
              rf"(?:bitte\s+)?(?:an\s+)?)(?:meine[nr]?\s+kolleg\w*\s+|herrn?\s+|frau\s+)?(?:{_NAME}"
              rf"|{_ADDRESS})",
              r"\bzuständig\s+(?:ist|wäre|dafür\s+ist)\b", r"\ban\s+(?:\S+\s+){1,3}weitergeleitet",
              r"\bansprechpartner(?:in)?\s+(?:ist|wäre|dafür)"),
    "fr": _rx(rf"\b(?:contactez|adressez-vous\s+à|écrivez\s+à|voyez\s+avec)\s+(?:plutôt\s+)?(?:mon"
              rf"\s+collègue\s+|"
              rf"ma\s+collègue\s+)?(?:{_NAME}|{_ADDRESS})",
              r"\bla\s+(?:bonne\s+)?personne\s+(?:à\s+contacter\s+)?est\b", r"\bj['’]ai\s+transféré\b",
              r"\ben\s+charge\s+(?:de\s+ce\s+sujet\s+)?est\b", r"\bs['’]occupe\s+de\s+(?:ce|cette|ces)\b"),
    "es": _rx(rf"\b(?:contacte|escriba|hable|contacta|escribe|habla)\s+(?:con|a)\s+(?:mi\s+compañer[oa]\s+)?"
              rf"(?:{_NAME}|{_ADDRESS})",
              r"\bla\s+persona\s+(?:adecuada|indicada|correcta|responsable)\s+es\b", r"\bhe\s+reenviado\b",
              r"\bquien\s+(?:lleva|se\s+encarga)", r"\bse\s+encarga\s+de\s+(?:esto|este|estos)"),
    "it": _rx(rf"\b(?:contatti|scriva\s+a)\s+(?:{_NAME}|{_ADDRESS})", r"\bla\s+persona\s+giusta\s+è\b"),
    "nl": _rx(rf"\b(?:neem\s+contact\s+op\s+met|mail)\s+(?:{_NAME}|{_ADDRESS})", r"\bde\s+juiste"
                                                                                 r"\s+persoon\s+is\b"),
    "pt": _rx(rf"\b(?:contacte|fale\s+com)\s+(?:{_NAME}|{_ADDRESS})", r"\ba\s+pessoa\s+certa\s+é\b"),
}

_NOT_INTERESTED = {
    "en": _rx(r"\b(?:isn[\'’]t|is\s+not|not)\s+(?:relevant|a\s+need|something\s+we\s+need)\b",
              r"\b(?:go(?:ing)?|went|gone)\s+(?:in\s+)?(?:another|a\s+different)\s+direction\b",
              r"\bnot\s+for\s+us\b",
              r"\bno\s+need\s+for\b",
              r"\b(?:we[\'’]ll|i[\'’]ll|we\s+will|i\s+will)\s+pass\b",
              r"\bnot\s+interesting\b",
              r"\bnot\s+(?:really\s+|currently\s+|at\s+all\s+)?interested\b", r"\bno\s+thanks?\b",
              r"\bno,?\s+thank\s+you\b",
              r"\bnot\s+(?:a\s+(?:good\s+)?fit|relevant|for\s+us|looking|a\s+priority|in\s+the\s+market)\b",
              r"\bwe\s+(?:already\s+)?(?:have|use|work\s+with)\s+(?:a|an|our\s+own)\s+\w*\s*(?:solution"
              r"|provider|vendor|"
              r"tool|partner|agency|team)", r"\bwe(?:['’]re|\s+are)\s+(?:all\s+)?(?:set|good|covered)\b",
              r"\bpass\s+on\s+this\b", r"\bno\s+need\b", r"\bnot\s+(?:now|at\s+this\s+time|right\s+now)\b",
              r"\bno\s+budget\b", r"\bwill\s+pass\b", r"\bnot\s+something\s+we\b", r"\bdecline\b"),
    "de": _rx(r"\b(?:sind|bin)\s+(?:bereits\s+|schon\s+|gut\s+)?versorgt\b",
              r"\bkein\s+thema\b",
              r"\bkein(?:e|en)?\s+(?:interesse|bedarf)\b",
              r"\bnicht\s+interessant\b",
              r"\bkein(?:e)?\s+(?:interesse|bedarf)\b", r"\bnein,?\s+danke\b", r"\bnicht\s+interessiert\b",
              r"\binteressiert\s+(?:mich|uns)\s+nicht\b",
              r"\bhaben\s+(?:bereits|schon)\s+(?:einen|eine|ein)\b",
              r"\bderzeit\s+nicht\b", r"\bpasst\s+(?:nicht|leider\s+nicht)\b", r"\bkein\s+thema\s+für\s+uns"),
    "fr": _rx(r"\bpas\s+d['’]actualité\b",
              r"\bpas\s+une\s+priorité\b",
              r"\bpas\s+intéressant\b",
              r"\bpas\s+(?:intéressée?s?|interessée?)\b", r"\bnon\s+merci\b", r"\bpas\s+de\s+besoin\b",
              r"\bne\s+(?:sommes|suis)\s+pas\s+(?:intéressés?|intéressée?|preneurs?)\b",
              r"\baucun\s+(?:intérêt|besoin)\b",
              r"\bavons\s+déjà\s+(?:un|une)\b", r"\bpas\s+pour\s+(?:le\s+moment|nous)\b"),
    "es": _rx(r"\bno\s+es\s+de\s+nuestro\s+interés\b",
              r"\bpor\s+ahora\s+no\b",
              r"\bno\s+(?:estamos|estoy)\s+buscando\b",
              r"\bno\s+es\s+(?:una\s+)?prioridad\b",
              r"\bno\s+(?:me|nos)\s+interesa\b", r"\bno\s+estoy\s+interesad", r"\bno\s+estamos\s+interesad",
              r"\bno,?\s+gracias\b", r"\bya\s+(?:tenemos|contamos\s+con|trabajamos\s+con)\b",
              r"\bno\s+es\s+para\s+nosotros",
              r"\bno\s+(?:lo\s+)?necesitamos\b", r"\bsin\s+interés\b"),
    "it": _rx(r"\bnon\s+(?:sono|siamo)\s+interessat", r"\bno,?\s+grazie\b", r"\bnon\s+ci\s+interessa"),
    "nl": _rx(r"\bgeen\s+interesse\b", r"\bnee,?\s+bedankt\b", r"\bniet\s+geïnteresseerd"),
    "pt": _rx(r"\bnão\s+(?:tenho|temos)\s+interesse\b", r"\bnão,?\s+obrigad", r"\bnão\s+(?:estou"
                                                                              r"|estamos)\s+interessad"),
}

_MEETING = {
    "en": _rx(r"\b(?:set\s+up|schedule|book|arrange|organi[sz]e)"
              r"\s+(?:a\s+|an\s+)?(?:\w+\s+){0,2}(?:call|chat|meeting|demo)\b",
              r"\b(?:grab|book|pick)\s+(?:a\s+)?(?:slot|time)\b",
              r"\bmy\s+calendar\b",
              r"\bcall\s+me\b",
              r"\b\d{1,2}\s+minutes\s+on\s+(?:monday|tuesday|wednesday|thursday|friday)",
              r"\b\d+[- ]?min(?:ute)?s?\s+(?:call|chat|meeting|demo)\b",
              r"\blet[\'’]?s\s+meet\b",
              r"\b(?:call|chat|meeting|demo)"
              r"\s+(?:on\s+)?(?:monday|tuesday|wednesday|thursday|friday|tomorrow|next\s+week)",
              r"\b(?:let['’]?s|can\s+we|could\s+we|shall\s+we|happy\s+to|glad\s+to)\s+(?:set\s+up\s+a"
              r"\s+|have\s+a\s+|"
              r"schedule\s+a\s+|book\s+a\s+|jump\s+on\s+a\s+|hop\s+on\s+a\s+)?(?:call|chat|meet|talk"
              r"|meeting|demo|speak)\b",
              r"\b(?:how|what)\s+about\s+(?:monday|tuesday|wednesday|thursday|friday|tomorrow|next\s+week)\b",
              r"\b(?:send|share)\s+(?:me\s+)?(?:a|an|your)\s+(?:calendar\s+)?(?:invite|link|calendly"
              r"|times?|availability)",
              r"\bare\s+you\s+(?:free|available)\b", r"\bbook\s+(?:a|some)\s+time\b", r"\bcalendly\b",
              r"\b(?:free|available)\s+(?:on\s+)?(?:monday|tuesday|wednesday|thursday|friday|tomorrow"
              r"|next\s+week)",
              r"\b\d{1,2}(?::\d{2})?\s*(?:am|pm)\b", r"\bschedule\s+(?:a|some)\s+(?:call|time|meeting)"),
    "de": _rx(r"\b(?:rufen\s+sie\s+mich|ruf\s+mich)\b.{0,40}\ban\b",
              r"\b(?:termin|telefonat|gespräch|call|videocall|meeting)\b.{0,40}\b(?:vereinbaren|ausmachen|"
              r"machen|finden|vorschlagen|passt|möglich)", r"\bwann\s+(?:passt|haben\s+sie\s+zeit)",
              r"\b(?:montag|dienstag|mittwoch|donnerstag|freitag)\s+um\s+\d",
              r"\bum\s+\d{1,2}(?::\d{2})?\s+uhr\b",
              r"\blassen\s+sie\s+uns\s+(?:telefonieren|sprechen)", r"\bgerne\s+(?:telefonieren|sprechen)\b"),
    "fr": _rx(r"\bappel(?:ez|le)[- ]moi\b",
              r"\b(?:rendez-vous|rdv|appel|call|visio|réunion|créneau)\b.{0,40}\b(?:fixer|caler"
              r"|organiser|planifier|"
              r"convient|possible|proposer)", r"\b(?:lundi|mardi|mercredi|jeudi|vendredi)\s+à\s+\d",
              r"\b\d{1,2}\s*h(?:\d{2})?\b",
              r"\b(?:fixer|caler|organiser|planifier|prendre)\s+un\s+(?:rendez-vous|rdv|appel|créneau"
              r"|call|échange)",
              r"\bon\s+peut\s+(?:s['’]appeler|en\s+parler|échanger)",
              r"\bdisponible\s+(?:lundi|mardi|mercredi|jeudi|vendredi|demain|la\s+semaine)"),
    "es": _rx(r"\bllám(?:e|a)me\b",
              r"\b(?:reunión|llamada|cita|videollamada)\b.{0,40}\b(?:agendar|programar|concertar"
              r"|organizar|tener|"
              r"podemos|posible|hacer)", r"\b(?:lunes|martes|miércoles|jueves|viernes)\s+a\s+las\s+\d",
              r"\ba\s+las\s+\d{1,2}(?::\d{2})?\b",
              r"\b(?:agendar|programar|concertar|organizar|tener)\s+una\s+(?:reunión|llamada|cita"
              r"|videollamada)", r"\b(?:podemos|hablamos)\s+(?:hablar|el\s+(?:lunes|martes|miércoles|"
              r"jueves|viernes))", r"\b¿?cuándo\s+(?:le|te)\s+(?:viene\s+bien|va\s+bien)"),
    "it": _rx(r"\b(?:chiamata|riunione|appuntamento)\b.{0,40}\b(?:fissare|organizzare|possiamo)"),
    "nl": _rx(r"\b(?:afspraak|belletje|gesprek)\b.{0,40}\b(?:plannen|inplannen|maken)"),
    "pt": _rx(r"\b(?:reunião|chamada)\b.{0,40}\b(?:agendar|marcar|podemos)"),
}

_INTERESTED = {
    "en": _rx(r"\b(?:could|might|may)\s+be\s+(?:useful|interesting|helpful|relevant)\b",
              r"\bhappy\s+to\s+(?:take\s+a\s+look|learn|hear)\b",
              r"\bi['’]m\s+curious\b",
              r"\bsend\s+(?:over|me)\s+(?:the\s+)?(?:details|info)\b",
              r"\binteresting\s+(?:timing|idea|offer|proposal)\b",
              r"\b(?:i|we)[\'’]?d\s+(?:like|love)\s+to\s+(?:see|learn|hear|know|try|explore)\b",
              r"\b(?:sounds|looks)\s+(?:interesting|good|great|promising)\b",
              r"\b(?:i['’]m|we['’]re|i\s+am|we\s+are)\s+(?:very\s+|quite\s+|definitely\s+)?interested\b",
              r"\btell\s+me\s+more\b",
              r"\bsend\s+(?:me\s+)?(?:more\s+"
              r"(?:info|information|details)|(?:the|a|your)\s+(?:deck|brochure|pricing|proposal))",
              r"\bkeen\s+to\s+(?:learn|hear|know)", r"\bwould\s+(?:love|like)\s+to\s+(?:learn|hear|know"
                                                    r"|see)\s+more\b",
              r"\byes,?\s+please\b", r"\bi['’]d\s+be\s+(?:open|interested)\b", r"\bopen\s+to\s+(?:it"
                                                                               r"|learning|hearing)"),
    "de": _rx(r"\b(?:hört|klingt)\s+sich\s+(?:gut|interessant|spannend)\s+an\b",
              r"\bsenden\s+sie\s+mir\b",
              r"\b(?:ist|klingt|wäre)"
              r"\s+(?:für\s+uns\s+)?(?:grundsätzlich\s+|durchaus\s+|sehr\s+)?interessant\b",
              r"\bklingt\s+(?:interessant|gut|spannend)\b", r"\b(?:bin|sind)\s+(?:sehr\s+)?interessiert\b",
              r"\bschicken\s+sie\s+(?:mir\s+)?(?:gerne\s+)?(?:mehr|weitere|unterlagen|infos)",
              r"\bmehr\s+(?:dazu\s+)?erfahren\b", r"\bgerne\s+mehr\b"),
    "fr": _rx(r"\bpourquoi\s+pas\b",
              r"\benvoyez[- ]moi\b",
              r"\bm[\'’]intéresse\b",
              r"\bnous\s+intéresse\b",
              r"\b(?:ça|cela)\s+(?:m['’]intéresse|nous\s+intéresse|semble\s+intéressant)",
              r"\b(?:je\s+suis|nous\s+sommes)\s+intéressée?s?\b", r"\ben\s+savoir\s+plus\b",
              r"\benvoyez[- ]moi\s+(?:plus\s+d['’]|de\s+la\s+|votre|une)"),
    "es": _rx(r"\bpodría\s+ser\s+interesante\b",
              r"\benvíe(?:me)?\b",
              r"\b(?:nos|me)\s+parece\s+(?:muy\s+)?interesante\b",
              r"\bme\s+interesa\b", r"\bnos\s+interesa\b", r"\bsuena\s+(?:interesante|bien)\b",
              r"\bsaber\s+más\b",
              r"\benvíe(?:me)?\s+(?:más|información)", r"\bestoy\s+interesad", r"\bestamos\s+interesad"),
    "it": _rx(r"\bmi\s+interessa\b", r"\bsembra\s+interessante\b"),
    "nl": _rx(r"\bklinkt\s+interessant\b", r"\bmeer\s+informatie\b"),
    "pt": _rx(r"\btenho\s+interesse\b", r"\bparece\s+interessante\b"),
}

_QUESTION = {
    "en": _rx(r"\b(?:how\s+much|what['’]s|what\s+(?:is|are|does)|how\s+(?:does|do|is)|which|can\s+you|"
              r"do\s+you|is"
              r"\s+there|"
              r"who\s+else)\b"),
    "de": _rx(r"\b(?:wie\s+viel|was\s+kostet|wie\s+funktioniert|gibt\s+es|können\s+sie|haben\s+sie)\b"),
    "fr": _rx(r"\b(?:combien|comment|quel(?:le)?s?|est-ce\s+que|pouvez-vous)\b"),
    "es": _rx(r"\b(?:cuánto|cómo|qué|cuál|dónde|cuándo|puede|tienen|funciona)\b"),
    "it": _rx(r"\b(?:quanto|come|quale)\b"),
    "nl": _rx(r"\b(?:hoeveel|hoe\s+werkt|wat\s+kost)\b"),
    "pt": _rx(r"\b(?:quanto|como\s+funciona|qual)\b"),
}

# Words common in short business mail, per language: which tables to read first and
# which language dates are parsed in. A text with none of them is of an unknown language.
_LANGUAGE_WORDS = {
    "en": {"the", "and", "you", "your", "i", "we", "not", "please", "thanks", "is", "are", "me", "my", "to",
           "what", "how", "does", "do", "s", "our", "us", "sorry", "would", "this", "that", "in", "at", "was",
           "have", "has", "last", "who", "where", "if", "from", "but", "by", "an", "a",
           "of", "for", "on", "until", "will", "be", "no", "hi", "hello", "am", "it", "with", "can"},
    "de": {"der", "die", "das", "und", "sie", "ich", "wir", "nicht", "bitte", "danke", "ist", "mich", "mir",
           "bis", "am", "kein", "keine", "ihre", "ihnen", "hallo", "mit", "zu", "für", "bin", "uns", "von",
           "aus", "dem", "den", "des", "ein", "eine", "auch", "es", "wer", "sind", "nach"},
    "fr": {"le", "la", "les", "et", "vous", "je", "nous", "pas", "merci", "est", "moi", "ne", "de", "du",
           "au", "suis", "bonjour", "pour", "avec", "une", "un", "des", "plus", "votre", "jusqu", "mon",
           "vos",
           "ce", "qui", "êtes", "mes", "sont"},
    "es": {"el", "la", "los", "las", "y", "usted", "yo", "no", "gracias", "es", "me", "de", "del", "hasta",
           "estoy", "hola", "para", "con", "una", "un", "por", "su", "nos", "estaré", "muchas", "están",
           "dónde", "qué", "cómo", "cuánto", "le", "mi", "lo", "más", "sus", "quién", "esto", "funciona",
           "deseo", "quiero"},
    "it": {"il", "lo", "gli", "e", "lei", "io", "non", "grazie", "sono", "mi", "di", "al", "fino", "ciao",
           "per", "con", "una", "buongiorno", "sarò"},
    "nl": {"de", "het", "een", "en", "ik", "wij", "niet", "bedankt", "is", "mij", "tot", "van", "met", "voor",
           "graag", "ben", "op", "geen"},
    "pt": {"o", "os", "a", "as", "e", "você", "eu", "não", "obrigado", "obrigada", "é", "me", "de", "do",
           "até", "olá", "para", "com", "estou"},
    "sv": {"och", "jag", "inte", "tack", "är", "mig", "till", "med", "för", "på", "den", "hej"},
    "pl": {"i", "nie", "dziękuję", "jest", "mnie", "do", "na", "w", "z", "jestem", "dzień", "dobry"},
}

_TABLES: tuple[tuple[IntentClass, dict[str, re.Pattern[str]], float], ...] = (
    (IntentClass.UNSUBSCRIBE, _UNSUBSCRIBE, 0.95),
    (IntentClass.OUT_OF_OFFICE, _OUT_OF_OFFICE, 0.9),
    (IntentClass.REFERRAL, _REFERRAL, 0.85),
    (IntentClass.WRONG_PERSON, _WRONG_PERSON, 0.85),  # a referral when it gives an address
    (IntentClass.NOT_INTERESTED, _NOT_INTERESTED, 0.85),
    (IntentClass.MEETING, _MEETING, 0.8),
    (IntentClass.INTERESTED, _INTERESTED, 0.8),
)

_EMAIL = re.compile(r"(?<![\w.+-])([A-Za-z0-9][\w.+-]{0,63}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+)")
_WORD = re.compile(r"[^\W\d_]+", re.U)
# Where a quoted message begins, in the forms mail-parser-reply misses (its Spanish
# header wants two spaces; some programs put the header on one line before the quote).
_QUOTE_HEADER = re.compile(
    r"^.{0,200}(?:wrote|schrieb|a\s+écrit|escribió|ha\s+scritto|schreef|escreveu|skrev|napisał)\s*:\s*$"
    r"|^-{3,}\s*(?:original\s+message|ursprüngliche\s+nachricht|message\s+d['’]origine|mensaje\s+original)"
    r"|^_{10,}\s*$",
    re.I | re.M,
)
# Lines a phone or a mail program adds, which say nothing about the sender's intent.
_FOOTER = re.compile(
    r"^[ \t]*(?:sent\s+from\s+my\s+\w+|get\s+outlook\s+for\s+\w+|envoyé\s+de\s+mon\s+\w+|von\s+meinem"
    r"\s+\w+\s+gesendet"
    r"|gesendet\s+von\s+(?:meinem\s+)?\w+|enviado\s+desde\s+mi\s+\w+|inviato\s+da(?:l\s+mio)?\s+\w+"
    r"|verzonden\s+vanaf\s+mijn\s+\w+|enviado\s+do\s+meu\s+\w+|skickat\s+från\s+min\s+\w+).*$",
    re.I | re.M,
)


# -- the latest reply, without quotes, signature or footers ---------------------------


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "blockquote"):
            self._skip += 1
        elif tag in ("br", "p", "div", "tr", "li"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "blockquote") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_text(html: str) -> str:
    """The visible text of an HTML part, without its quoted <blockquote>s."""
    parser = _Text()
    parser.feed(html[:200_000])
    return "".join(parser.parts)


@lru_cache(maxsize=1)
def _parser() -> EmailReplyParser:
    return EmailReplyParser(languages=["en", "de", "fr", "es", "it", "nl", "pl", "sv"])


def latest_text(text: str) -> str:
    """What the person wrote this time: quoted history, signature, disclaimers and
    mobile footers cut (mail-parser-reply, then ``>`` lines and footers)."""
    text = _BLANK_RUNS.sub("\n\n", text[:50_000].replace("\r\n", "\n"))[:PARSE_LIMIT]
    try:
        replies = _parser().read(text).replies
        latest = str(replies[0].body) if replies else text
    except Exception:  # noqa: BLE001 - a stranger's text: never crash the reader on it
        latest = text
    cut = _QUOTE_HEADER.search(latest)
    if cut is not None:
        latest = latest[:cut.start()]
    lines = [line for line in latest.splitlines() if not line.lstrip().startswith(">")]
    return _FOOTER.sub("", "\n".join(lines)).strip()[:TEXT_LIMIT]


# -- judging --------------------------------------------------------------------------


def language_of(text: str) -> str | None:
    """The language whose common words the text holds most of; None below two hits."""
    words = [w.lower() for w in _WORD.findall(text[:2000])]
    scores = {lang: sum(w in common for w in words) for lang, common in _LANGUAGE_WORDS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] >= 2 else None


def judge(text: str, *, subject: str = "", automatic: bool = False, received_at: datetime | None = None,
          own_domain: str | None = None) -> Intent:
    """The intent of one reply's text (the whole body as received; the quoted part is
    cut here). ``automatic``: the message said it was an automatic reply (RFC 3834);
    ``received_at``: what relative dates count from; ``own_domain``: the mailbox's
    domain, never a referral's address."""
    body = latest_text(text)
    judged = f"{_subject_words(subject)}\n{body}"
    language = language_of(body) or language_of(judged)
    order = [language] if language else []
    order += [lang for lang in _LANGUAGE_WORDS if lang != language]
    for kind, table, confidence in _TABLES:
        for lang in order:
            pattern = table.get(lang)
            if pattern is None or not pattern.search(judged):
                continue
            shown = confidence if lang == language else confidence - 0.15
            return _found(kind, shown, lang, body, received_at, own_domain)
    if automatic:  # a ticket system's receipt, a "thanks, we got it": no absence to wait out
        return Intent(IntentClass.OTHER, 0.5, "automatic reply, no absence phrase", language)
    asked = next((lang for lang in order if lang in _QUESTION and _QUESTION[lang].search(body)), None) \
        if "?" in body else None
    if asked is not None:
        return Intent(IntentClass.QUESTION, 0.6 if asked == language else 0.4, f"question ({asked})", asked)
    if language is None:
        return Intent(IntentClass.OTHER, 0.1, "language not recognised")
    if "?" in body:
        return Intent(IntentClass.QUESTION, 0.4, f"question mark ({language})", language)
    return Intent(IntentClass.OTHER, 0.3, f"no rule matched ({language})", language)


def _subject_words(subject: str) -> str:
    """What the subject adds: "Abwesenheitsnotiz: Re: Hello" says something, "Re: Hello"
    (our own subject, answered) says nothing of the reply."""
    return "" if _REPLY_PREFIX.match(subject) else subject[:300]


_REPLY_PREFIX = re.compile(r"^\s*(?:re|aw|rv|sv|r|antw|odp)\s*:", re.I)


def _found(kind: IntentClass, confidence: float, lang: str, body: str, received_at: datetime | None,
           own_domain: str | None) -> Intent:
    reason = f"{kind.value} phrase ({lang})"
    if kind is IntentClass.OUT_OF_OFFICE:
        return Intent(kind, confidence, reason, lang, _return_date(body, lang, received_at))
    if kind in (IntentClass.REFERRAL, IntentClass.WRONG_PERSON):
        referred = _referred(body, own_domain)
        if referred is not None:
            why = f"{reason}, an address given"
            return Intent(IntentClass.REFERRAL, confidence, why, lang, referred=referred)
    return Intent(kind, confidence, reason, lang)


def _referred(body: str, own_domain: str | None) -> str | None:
    """The first address in the latest reply that is not the sender's own mailbox domain."""
    for found in _EMAIL.findall(body):
        address = str(found).rstrip(".").lower()
        if own_domain is None or not address.endswith("@" + own_domain.lower()):
            return address
    return None


# -- the return date ------------------------------------------------------------------

_DATE_WORDS = re.compile(
    r"^[\s,:]*((?:(?:den|dem|le|el|il|the|on|am|lundi|mardi|mercredi|jeudi|vendredi|lunes|martes|miércoles|"
    r"jueves|viernes|montag|dienstag|mittwoch|donnerstag|freitag|monday|tuesday|wednesday|thursday|friday|"
    r"samedi|dimanche|sábado|domingo|samstag|sonntag|saturday|sunday),?\s+)*"
    r"(?:\d{4}-\d{2}-\d{2}|\d{1,2}[./-]\d{1,2}(?:[./-]\d{2,4})?\.?|\d{1,2}(?:st|nd|rd|th|er|º|\.)?"
    r"(?:\s+(?:de\s+)?[^\W\d_]{3,12}\.?(?:\s+(?:de\s+)?\d{4})?)?|[^\W\d_]{3,12}\.?\s+\d{1,2}(?:st|nd|rd|th)?"
    r"(?:,?\s+\d{4})?|[^\W\d_]{5,12}))",
    re.U | re.I,
)
_INCLUSIVE = re.compile(r"through|thru|einschließlich|inclus|tot\s+en\s+met|till\s+och\s+med|incluido", re.I)
MAX_AHEAD = timedelta(days=366)
MAX_DATE_TRIES = 20  # cue phrases read for a date, per reply: a stranger chooses how many there are


def _return_date(body: str, lang: str, received_at: datetime | None) -> date | None:
    """The day the person is back, parsed in the reply's language (dateparser). A date
    said to be the day back ("back on", "ab dem ... wieder") wins over one the absence
    runs until ("vom 2. bis 13. März im Urlaub und ab dem 16. März wieder erreichbar")."""
    base = (received_at or datetime.now()).replace(tzinfo=None)
    cues = [lang, *(other for other in _RETURN_CUE if other not in (lang, "en")), "en"]
    found: list[tuple[bool, date]] = []
    tries = 0
    for cue_lang in dict.fromkeys(cues):
        cue = _RETURN_CUE.get(cue_lang)
        if cue is None:
            continue
        for match in cue.finditer(body):
            tries += 1
            if tries > MAX_DATE_TRIES:  # each try may cost dateparser a few calls
                break
            phrase = _DATE_WORDS.match(body[match.end():match.end() + 60])
            day = _parse_day(phrase.group(1), cue_lang, base) if phrase is not None else None
            if phrase is None or day is None:
                continue
            # "until the 14th" may mean back on the 14th or the 15th: the 14th, and the
            # buffer covers the rest; "through the 14th" says the 14th is still away.
            after = body[match.end() + phrase.end():match.end() + phrase.end() + 12]
            inclusive = _INCLUSIVE.search(match.group(0) + " " + after) is not None
            is_back = _UNTIL.search(match.group(0)) is None
            found.append((is_back, day + timedelta(days=1) if inclusive else day))
        if found:
            break
    back = [day for is_back, day in found if is_back] or [day for _, day in found]
    return back[0] if back else None


_UNTIL = re.compile(r"until|till|through|thru|\bbis\b|jusqu|hasta|fino|\btot\b|até|till\s+och|\bdo\b", re.I)


def _parse_day(phrase: str, lang: str, base: datetime) -> date | None:
    import dateparser  # noqa: PLC0415 - its import costs ~0.3 s: only when a date is looked for

    numeric = _numeric_day(phrase, lang, base)
    if numeric is not None:
        return numeric
    words = phrase.strip(" .,").split()
    for n in range(min(len(words), 6), 0, -1):  # the longest prefix that reads as a date
        candidate = " ".join(words[:n]).strip(" .,")
        if not re.search(r"\d", candidate) and len(candidate) < 5:
            continue
        found = dateparser.parse(candidate, languages=[lang, "en"], settings={
            "RELATIVE_BASE": base, "PREFER_DATES_FROM": "future", "PREFER_DAY_OF_MONTH": "first",
            "DATE_ORDER": "MDY" if lang == "en" and re.match(r"^\d{1,2}/\d{1,2}", candidate) else "DMY",
            "REQUIRE_PARTS": ["day"] if re.search(r"\d", candidate) else [],
        })
        if found is not None:
            if found.date() < base.date() and found.year == base.year and not re.search(r"\d{4}", candidate):
                found = found.replace(year=base.year + 1)  # "until 3 January", written in December
            if found - base <= MAX_AHEAD:
                day: date = found.date()
                return day
    return None


_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_DMY = re.compile(r"\b(\d{1,2})([./-])(\d{1,2})(?:\2(\d{2}|\d{4}))?\b")


def _numeric_day(phrase: str, lang: str, base: datetime) -> date | None:
    """A date written in digits: ISO, or day and month (month first in US English with
    slashes), the year when given, else the next such day."""
    try:
        if (iso := _ISO.search(phrase)) is not None:
            return date(int(iso[1]), int(iso[2]), int(iso[3]))
        if (dmy := _DMY.search(phrase)) is None:
            return None
        first, second = int(dmy[1]), int(dmy[3])
        day, month = (second, first) if lang == "en" and dmy[2] == "/" and first <= 12 else (first, second)
        year = int(dmy[4]) if dmy[4] else base.year
        year += 2000 if year < 100 else 0
        found = date(year, month, day)
        if not dmy[4] and found < base.date():
            found = date(year + 1, month, day)
        return found
    except ValueError:  # 31.02, month 13: not a date
        return None
