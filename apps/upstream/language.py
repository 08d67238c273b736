"""Tiny stopword-based language detection and the fixed phrases the emulator answers with.

Only the languages the support bot is expected to meet (en, fr, de, es, it, pt, nl). The word lists
keep mostly words that are distinctive for one language, so a short message still scores correctly.
"""

from __future__ import annotations

import re
import unicodedata

STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "the",
            "and",
            "is",
            "are",
            "you",
            "your",
            "my",
            "i",
            "to",
            "of",
            "it",
            "for",
            "with",
            "how",
            "what",
            "can",
            "do",
            "does",
            "this",
            "that",
            "have",
            "not",
            "please",
            "why",
            "when",
            "where",
            "was",
            "will",
            "would",
            "should",
            "could",
            "there",
            "their",
            "they",
            "hello",
            "hi",
            "thanks",
            "thank",
        ]
    ),
    "fr": frozenset(
        [
            "le",
            "les",
            "et",
            "est",
            "je",
            "vous",
            "mon",
            "ma",
            "mes",
            "pour",
            "avec",
            "une",
            "des",
            "du",
            "pas",
            "qui",
            "comment",
            "pourquoi",
            "ne",
            "mais",
            "sur",
            "dans",
            "bonjour",
            "merci",
            "c'est",
            "j'ai",
            "ai",
            "suis",
            "votre",
            "au",
            "aux",
            "ce",
            "cette",
            "être",
            "avez",
            "fait",
        ]
    ),
    "de": frozenset(
        [
            "der",
            "die",
            "das",
            "und",
            "ist",
            "ich",
            "sie",
            "mein",
            "meine",
            "nicht",
            "mit",
            "für",
            "ein",
            "eine",
            "wie",
            "warum",
            "kann",
            "auf",
            "zu",
            "dem",
            "bitte",
            "danke",
            "hallo",
            "habe",
            "wurde",
            "ihr",
            "mir",
            "sind",
            "auch",
            "noch",
            "wir",
        ]
    ),
    "es": frozenset(
        [
            "el",
            "los",
            "las",
            "y",
            "yo",
            "mis",
            "con",
            "por",
            "cómo",
            "qué",
            "pero",
            "hola",
            "gracias",
            "tengo",
            "puedo",
            "está",
            "estoy",
            "mí",
            "su",
            "sus",
            "muy",
            "cuenta",
            "factura",
            "necesito",
            "ayuda",
        ]
    ),
    "it": frozenset(
        [
            "il",
            "lo",
            "gli",
            "è",
            "io",
            "mio",
            "mia",
            "che",
            "perché",
            "non",
            "ciao",
            "grazie",
            "ho",
            "posso",
            "sono",
            "della",
            "del",
            "nel",
            "mi",
            "come",
            "questo",
            "anche",
            "fattura",
        ]
    ),
    "pt": frozenset(
        [
            "os",
            "é",
            "eu",
            "meu",
            "minha",
            "não",
            "olá",
            "obrigado",
            "obrigada",
            "tenho",
            "você",
            "do",
            "da",
            "na",
            "no",
            "em",
            "mas",
            "como",
            "por",
            "isso",
            "minha",
            "conta",
            "fatura",
            "ajuda",
            "preciso",
        ]
    ),
    "nl": frozenset(
        [
            "het",
            "een",
            "ik",
            "mijn",
            "voor",
            "niet",
            "hoe",
            "waarom",
            "wat",
            "kan",
            "maar",
            "hallo",
            "bedankt",
            "dank",
            "heb",
            "wordt",
            "zijn",
            "van",
            "op",
            "je",
            "jullie",
            "graag",
            "mijn",
            "factuur",
        ]
    ),
}
SUPPORTED_LANGUAGES: tuple[str, ...] = tuple(STOPWORDS)
_WORD = re.compile(r"[\w']+")

LEAD_IN: dict[str, str] = {
    "en": "Here is what I found in our help center.",
    "fr": "Voici ce que j'ai trouvé dans notre centre d'aide.",
    "de": "Folgendes habe ich in unserem Hilfe-Center gefunden.",
    "es": "Esto es lo que encontré en nuestro centro de ayuda.",
    "it": "Ecco cosa ho trovato nel nostro centro assistenza.",
    "pt": "Aqui está o que encontrei na nossa central de ajuda.",
    "nl": "Dit heb ik gevonden in ons helpcentrum.",
}
ACCOUNT_LEAD_IN: dict[str, str] = {
    "en": "From your account details:",
    "fr": "D'après les informations de votre compte :",
    "de": "Laut Ihren Kontodaten:",
    "es": "Según los datos de su cuenta:",
    "it": "Secondo i dati del suo account:",
    "pt": "De acordo com os dados da sua conta:",
    "nl": "Volgens uw accountgegevens:",
}
CLOSING: dict[str, str] = {
    "en": "Let me know if there is anything else I can help with.",
    "fr": "N'hésitez pas si vous avez d'autres questions.",
    "de": "Melden Sie sich gern, wenn ich noch weiter helfen kann.",
    "es": "Avíseme si puedo ayudarle con algo más.",
    "it": "Mi faccia sapere se posso aiutarla in altro.",
    "pt": "Diga-me se posso ajudar em mais alguma coisa.",
    "nl": "Laat het me weten als ik nog ergens mee kan helpen.",
}
NOT_FOUND: dict[str, str] = {
    "en": "I'm sorry, I couldn't find information about that in our help center. "
    "Could you give me a few more details, or would you like me to connect you with our support team?",
    "fr": "Je suis désolé, je n'ai pas trouvé d'information à ce sujet dans notre centre d'aide. "
    "Pouvez-vous me donner plus de détails, ou souhaitez-vous être mis en relation avec notre équipe ?",
    "de": "Leider habe ich dazu nichts in unserem Hilfe-Center gefunden. "
    "Können Sie mir mehr Details nennen, oder soll ich Sie mit unserem Support-Team verbinden?",
    "es": "Lo siento, no encontré información sobre eso en nuestro centro de ayuda. "
    "¿Puede darme más detalles o prefiere que le ponga en contacto con nuestro equipo?",
    "it": "Mi dispiace, non ho trovato informazioni al riguardo nel nostro centro assistenza. "
    "Può darmi qualche dettaglio in più, oppure preferisce parlare con il nostro team?",
    "pt": "Desculpe, não encontrei informações sobre isso na nossa central de ajuda. "
    "Pode dar mais detalhes, ou prefere falar com a nossa equipe de suporte?",
    "nl": "Sorry, ik kon daar niets over vinden in ons helpcentrum. "
    "Kunt u meer details geven, of wilt u dat ik u met ons supportteam verbind?",
}
GREETING: dict[str, str] = {
    "en": "Hello! How can I help you today?",
    "fr": "Bonjour ! Comment puis-je vous aider aujourd'hui ?",
    "de": "Hallo! Wie kann ich Ihnen heute helfen?",
    "es": "¡Hola! ¿En qué puedo ayudarle hoy?",
    "it": "Ciao! Come posso aiutarla oggi?",
    "pt": "Olá! Como posso ajudar hoje?",
    "nl": "Hallo! Hoe kan ik u vandaag helpen?",
}
REFUSAL: dict[str, str] = {
    "en": "I can't help with that request. I'm here to help with questions about our products and your account.",
    "fr": "Je ne peux pas vous aider avec cette demande. "
    "Je suis là pour vos questions sur nos produits et votre compte.",
    "de": "Dabei kann ich nicht helfen. Ich beantworte gern Fragen zu unseren Produkten und Ihrem Konto.",
    "es": "No puedo ayudar con esa solicitud. Estoy aquí para preguntas sobre nuestros productos y su cuenta.",
    "it": "Non posso aiutarla con questa richiesta. Sono qui per domande sui nostri prodotti e sul suo account.",
    "pt": "Não posso ajudar com esse pedido. Estou aqui para dúvidas sobre nossos produtos e sua conta.",
    "nl": "Daar kan ik niet mee helpen. Ik help graag met vragen over onze producten en uw account.",
}


def words(text: str) -> list[str]:
    return [word.strip("'") for word in _WORD.findall(text.lower())]


def detect_language(text: str, default: str = "en") -> str:
    """The language whose stopwords occur most often; ties and no evidence fall back to `default`."""
    counts = {language: 0 for language in STOPWORDS}
    for word in words(text):
        for language, stopwords in STOPWORDS.items():
            if word in stopwords:
                counts[language] += 1
    best = max(counts, key=lambda language: (counts[language], language == default))
    return best if counts[best] > 0 else default


def fold_accents(text: str) -> str:
    return "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))
