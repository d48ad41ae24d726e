"""Order statuses: which say an order is a purchase, which say it is not, which cannot tell.

A shop export's status column (Shopify's "Financial Status", WooCommerce's "Order Status",
Magento's "status") decides whether a row is a purchase. Statuses are read on the distinct
values a column holds, here, for both engines: each engine counts the rows of every value
written in the column, and drops the rows whose written value this module calls not a
purchase (:func:`read_statuses`).

A status is compared by its *key*: lower case, trimmed, without WooCommerce's "wc-" prefix,
with every run of punctuation, '_' and '-' as one space ("order_refunded" and "Order
Refunded" are one status). Its meaning is, in this order:

1. what the user said (``--purchase-statuses``, ``--not-purchase-statuses``);
2. one of the statuses listed below, in English and the languages clvcast's users sell in;
3. a word of the status: a partial refund or payment ("partially_refunded") is a purchase;
   "cancelled", "refund", "fraud", "declined"... anywhere make it not one ("Order
   Cancelled", Magento's "order_refunded"); "pending", "awaiting"... an unpaid order,
   which stays a purchase and is counted in a note; "paid", "shipped", "delivered"... a
   purchase;
4. otherwise *unknown*, and the column is refused until the user says what it means.
   Magento's "closed" is an order refunded in full, Zoho's a completed one: read as a
   purchase without a word, a Magento export's refunded orders counted as purchases.

A column found by its name (:data:`STATUS_COLUMN_NAMES`) that holds no known status at all
is not a status column (a Brazilian address's "Estado": SP, RJ) and is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from clvcast.data.report import counted
from clvcast.data.rules import NO_COLUMN, named_column, option_columns
from clvcast.errors import InputError

PURCHASE, NOT_A_PURCHASE, UNPAID, UNKNOWN = "purchase", "not a purchase", "unpaid", "unknown"

# Column names (lower case, '_' as ' ') that hold an order's status in shop exports:
# Shopify's "Financial Status", WooCommerce's "Order Status", Magento's "status", and the
# same in the languages below. A name that is also something else ("Estado" is a Brazilian
# address's state) costs a look at its values, nothing more.
STATUS_COLUMN_NAMES = (
    "status", "order status", "financial status", "payment status", "order state",
    "estado", "estado del pedido", "estado pedido", "estado del pago", "estado de pago",
    "situação", "situacao", "status do pedido", "status do pagamento",
    "statut", "statut de la commande", "état", "etat", "état de la commande",
    "bestellstatus", "zahlungsstatus",
    "stato", "stato ordine", "stato dell'ordine", "stato pagamento",
    "status zamówienia", "status płatności",
    "bestelstatus", "betaalstatus",
)  # fmt: skip

# Values that stand for no status at all: MySQL writes a NULL as \N in its exports.
_MISSING = frozenset({"\\n", "null", "nan", "none", "n/a", "-"})

# Whole statuses that say an order is not a purchase: cancelled, refunded, returned, voided,
# failed or declined; unavailable (Olist: the order could not be filled), expired (Shopify:
# the payment's authorisation ran out), WooCommerce's checkout drafts (a checkout left before
# paying), in English and as shop platforms translate them for the markets clvcast's users
# sell in (PrestaShop's "Cancelado", Shopware's "Storniert", Tiendanube's "Cancelada"), with
# and without accents. A Spanish export's cancelled orders were read as purchases without a
# word.
_NOT_PURCHASES_BY_LANGUAGE = {
    "en": ("cancelled", "canceled", "refunded", "returned", "voided", "void", "failed",
           "declined", "payment error", "payment failed", "unavailable", "expired",
           "checkout-draft", "refund", "fraud", "suspected fraud", "chargeback", "rejected"),
    "es": ("cancelado", "cancelada", "anulado", "anulada", "reembolsado", "reembolsada",
           "devuelto", "devuelta", "fallido", "fallida", "rechazado", "rechazada",
           "error en pago", "error de pago", "pago rechazado"),
    "pt": ("cancelado", "cancelada", "reembolsado", "reembolsada", "devolvido", "devolvida",
           "estornado", "estornada", "falhou", "recusado", "recusada", "indisponível",
           "indisponivel"),
    "fr": ("annulé", "annulée", "annule", "annulee", "remboursé", "remboursée", "rembourse",
           "remboursee", "retourné", "retournée", "échoué", "échouée", "echoue", "echouee",
           "refusé", "refusée", "refuse", "refusee", "erreur de paiement"),
    "it": ("annullato", "annullata", "rimborsato", "rimborsata", "reso", "fallito", "fallita",
           "rifiutato", "rifiutata", "errore di pagamento", "errore nel pagamento"),
    "de": ("storniert", "abgebrochen", "erstattet", "rückerstattet", "zurückerstattet",
           "retourniert", "fehlgeschlagen", "abgelehnt", "zahlungsfehler"),
    "pl": ("anulowane", "anulowany", "anulowana", "zwrócone", "zwrócony", "zwrot",
           "zwrot środków", "nieudane", "odrzucone", "błąd płatności"),
    "nl": ("geannuleerd", "terugbetaald", "geretourneerd", "mislukt", "geweigerd"),
}  # fmt: skip
# Words that make any status they are part of not a purchase ("Order Cancelled", "Cancelled
# by customer", "order_refunded"): the one-word statuses above and their nouns.
_NOT_PURCHASE_WORDS = (
    "cancel", "cancellation", "return", "fraudulent", "chargedback", "reversed", "abandoned",
    "draft",
    "anulación", "anulacion", "cancelación", "cancelacion", "devolución", "devolucion",
    "reembolso", "cancelamento", "devolução", "devolucao", "estorno", "annulation",
    "remboursement", "annullamento", "rimborso", "stornierung", "storno", "erstattung",
    "rückerstattung", "anulowanie", "annulering", "terugbetaling",
)  # fmt: skip
# Statuses of orders that were not paid when the shop exported them: pending, on hold,
# authorised but not captured, awaiting payment, cash on delivery (Shopify, WooCommerce,
# Magento and the same in the languages above). They stay purchases, since most are paid
# later, and the report counts them, since some never are.
_UNPAID_BY_LANGUAGE = {
    "en": ("pending", "pending payment", "pending_payment", "on-hold", "on hold", "holded",
           "authorized", "authorised", "awaiting payment", "unpaid", "payment review",
           "payment_review", "not paid", "cod", "cash on delivery"),
    "es": ("pendiente", "pendiente de pago", "en espera", "en espera de pago",
           "contra reembolso", "contrarreembolso"),
    "pt": ("pendente", "aguardando pagamento", "aguardando"),
    "fr": ("en attente", "en attente de paiement"),
    "it": ("in attesa", "in attesa di pagamento"),
    "de": ("ausstehend", "zahlung ausstehend"),
    "pl": ("oczekujące", "oczekuje na płatność", "nieopłacone"),
    "nl": ("in afwachting", "wacht op betaling", "openstaand"),
}  # fmt: skip
# Words that make a status (not cancelled or refunded) an unpaid order ("Awaiting check
# payment", "pending_paypal", "On backorder (not paid)").
_UNPAID_WORDS = (
    "pending", "awaiting", "unpaid", "hold", "holded", "authorized", "authorised", "review",
    "pendiente", "pendente", "aguardando", "attente", "attesa", "ausstehend", "oczekujące",
    "oczekuje", "afwachting", "nieopłacone",
)  # fmt: skip
# Words of statuses of orders made and paid, or on their way ("Payment accepted",
# "Processing in progress", "Livré", "In Bearbeitung"). A partial refund or payment is a
# purchase: its amount is the order's, as the export writes it.
_PURCHASE_WORDS = (
    "paid", "complete", "completed", "delivered", "shipped", "processing", "processed",
    "process", "progress",
    "fulfilled", "invoiced", "approved", "accepted", "confirmed", "captured", "settled",
    "received", "dispatched", "sent", "success", "successful", "succeeded", "done",
    "finished", "transit", "delivery", "ready", "packed", "picked", "created", "new", "open",
    "placed", "ordered", "partial", "partially",
    "pago", "pagado", "pagada", "aceptado", "aceptada", "entregado", "entregada", "enviado",
    "enviada", "completado", "completada", "procesado", "procesando", "preparación",
    "preparacion", "aprobado", "aprobada", "facturado", "facturada", "confirmado",
    "entregue", "concluído", "concluido", "aprovado", "aprovada", "faturado", "faturada",
    "processando", "paga",
    "livré", "livrée", "livre", "livree", "expédié", "expédiée", "expedie", "expediee",
    "payé", "payée", "paye", "payee", "accepté", "acceptée", "accepte", "acceptee", "terminé",
    "terminée", "termine", "terminee", "validé", "validée", "valide", "validee",
    "préparation",
    "completato", "completata", "consegnato", "consegnata", "spedito", "spedita", "pagato",
    "pagata", "evaso", "evasa", "lavorazione", "confermato", "confermata",
    "abgeschlossen", "geliefert", "versandt", "versendet", "bezahlt", "bearbeitung",
    "zugestellt", "erledigt", "offen", "bestätigt",
    "zrealizowane", "zrealizowany", "wysłane", "wysłany", "dostarczone", "dostarczony",
    "opłacone", "opłacony", "realizacji", "zakończone", "przyjęte", "nowe",
    "voltooid", "geleverd", "verzonden", "betaald", "afgerond", "behandeling", "verwerkt",
    "nieuw",
)  # fmt: skip
# The few words whose meaning tells, said about the one status that has two.
_TWO_MEANINGS = {
    "closed": "Magento closes an order refunded in full, other tools a completed one",
}


def status_shown(written: str) -> str:
    """A status as the report shows it: lower case, trimmed, without the "wc-" prefix."""
    return written.strip().lower().removeprefix("wc-")


def status_key(written: str) -> str | None:
    """A status as it is compared: :func:`status_shown` with each run of punctuation,
    '_' and '-' as one space; None for no status (blank, MySQL's \\N, "null")."""
    shown = status_shown(written)
    if not shown or shown in _MISSING:
        return None
    return " ".join(re.sub(r"[\W_]+", " ", shown).split()) or None


def listed_statuses(statuses: str | Iterable[str] | None) -> tuple[str, ...]:
    """Statuses given as one comma-separated text (as the CLI takes them) or as several
    texts, blanks left out: "closed,exchange" is two statuses, not fifteen letters."""
    if statuses is None:
        return ()
    items = statuses.split(",") if isinstance(statuses, str) else statuses
    return tuple(item.strip() for item in map(str, items) if item.strip())


def _keys(statuses: Iterable[str]) -> frozenset[str]:
    return frozenset(key for status in statuses if (key := status_key(status)) is not None)


def _listed(by_language: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for words in by_language.values() for s in words))


STATUSES_NOT_PURCHASES = _listed(_NOT_PURCHASES_BY_LANGUAGE)
STATUSES_UNPAID = _listed(_UNPAID_BY_LANGUAGE)
_NOT_PURCHASE_KEYS = _keys(STATUSES_NOT_PURCHASES)
_UNPAID_KEYS = _keys(STATUSES_UNPAID)
_NOT_PURCHASE_WORD_KEYS = frozenset(
    {key for key in _NOT_PURCHASE_KEYS if " " not in key} | _keys(_NOT_PURCHASE_WORDS)
)
_UNPAID_WORD_KEYS = _keys(_UNPAID_WORDS)
_PURCHASE_WORD_KEYS = _keys(_PURCHASE_WORDS)
_PARTIAL = frozenset({"partial", "partially"})


@dataclass(frozen=True)
class StatusMeanings:
    """What the user said statuses mean (``--purchase-statuses``, ``--not-purchase-
    statuses``), by key; they win over every rule."""

    purchases: frozenset[str] = frozenset()
    not_purchases: frozenset[str] = frozenset()

    @classmethod
    def given(
        cls, purchases: str | Iterable[str], not_purchases: str | Iterable[str]
    ) -> StatusMeanings:
        """The meanings given (see :func:`listed_statuses`), refusing a status said to be
        both."""
        said = cls(_keys(listed_statuses(purchases)), _keys(listed_statuses(not_purchases)))
        both = sorted(said.purchases & said.not_purchases)
        if both:
            raise InputError(
                f"status '{both[0]}' is in both --purchase-statuses and "
                "--not-purchase-statuses; keep it in the one that says what it means."
            )
        return said

    @property
    def any(self) -> bool:
        return bool(self.purchases or self.not_purchases)


def status_meaning(key: str, said: StatusMeanings = StatusMeanings()) -> str:
    """:data:`PURCHASE`, :data:`NOT_A_PURCHASE`, :data:`UNPAID` or :data:`UNKNOWN` for a
    status key (see the module docstring for the order of the rules)."""
    if key in said.not_purchases:
        return NOT_A_PURCHASE
    if key in said.purchases:
        return PURCHASE
    if key in _NOT_PURCHASE_KEYS:
        return NOT_A_PURCHASE
    if key in _UNPAID_KEYS:
        return UNPAID
    words = set(key.split())
    if words & _PARTIAL:
        return PURCHASE
    if words & _NOT_PURCHASE_WORD_KEYS:
        return NOT_A_PURCHASE
    if words & _UNPAID_WORD_KEYS or {"not", "paid"} <= words:
        return UNPAID
    if words & _PURCHASE_WORD_KEYS:
        return PURCHASE
    return UNKNOWN


# A column with more distinct values than this holds no order status (order statuses are
# a few words); one named by --status-col is refused, one found by its name left alone.
MAX_STATUS_VALUES = 10_000


@dataclass(frozen=True)
class StatusReading:
    """What the status columns of an input said: the report's ``notes``, and the
    ``column`` read (--status-col) with its written values that are not purchases
    (``dropped``), which the engine drops and counts."""

    notes: tuple[str, ...] = ()
    column: str | None = None
    dropped: tuple[str, ...] = ()


def read_statuses(
    name: str,
    columns: Iterable[str],
    status_col: str | None,
    counts_of: Callable[[str], dict[str, int]],
    said: StatusMeanings = StatusMeanings(),
) -> StatusReading:
    """Check the status columns of an input and say what to drop and note.

    ``counts_of(column)`` is the engine's count of rows by value written in the column
    (text, nulls left out), for at most :data:`MAX_STATUS_VALUES` + 1 values. Without
    ``status_col``, a column named like a status column (:data:`STATUS_COLUMN_NAMES`) that
    holds a known status is checked: one with a status that is not a purchase is refused
    (:func:`unread_statuses`), so is one with an unknown status (:func:`unknown_statuses`).
    With it, that column is read: unknown statuses are refused, those that are not purchases
    dropped. Unpaid orders are counted in a note (:func:`unpaid_note`); ``status_col``
    "none" reads no status at all.
    """
    notes: list[str] = []
    read, dropped = named_column(status_col), ()
    for column in option_columns(columns, status_col, STATUS_COLUMN_NAMES):
        written = counts_of(column)
        if len(written) > MAX_STATUS_VALUES:
            if column != read:
                continue
            raise InputError(
                f"transactions ({name}): --status-col '{column}' holds more than "
                f"{MAX_STATUS_VALUES:,} different values, which no order status column does; "
                f"name the column of the orders' statuses, or pass --status-col {NO_COLUMN}."
            )
        by_meaning: dict[str, dict[str, int]] = {}
        meaning_of: dict[str, str] = {}
        for value, rows in written.items():
            key = status_key(value)
            if key is None:
                continue
            meaning_of[value] = status_meaning(key, said)
            rows_by_shown = by_meaning.setdefault(meaning_of[value], {})
            shown = status_shown(value)
            rows_by_shown[shown] = rows_by_shown.get(shown, 0) + rows
        if column != read and set(by_meaning) <= {UNKNOWN}:
            continue  # no known status: not a column of order statuses
        if UNKNOWN in by_meaning:
            raise unknown_statuses(name, column, by_meaning[UNKNOWN], column != read)
        if NOT_A_PURCHASE in by_meaning and column != read:
            raise unread_statuses(name, column, by_meaning[NOT_A_PURCHASE])
        if UNPAID in by_meaning:
            notes.append(unpaid_note(column, by_meaning[UNPAID], column == read))
        if column == read:
            dropped = tuple(sorted(v for v, m in meaning_of.items() if m == NOT_A_PURCHASE))
    if said.any and read is None:
        found = option_columns(columns, None, STATUS_COLUMN_NAMES)
        hint = f"pass --status-col '{found[0]}'" if found else "name it with --status-col"
        raise InputError(
            f"transactions ({name}): --purchase-statuses and --not-purchase-statuses say what "
            f"the statuses of a status column mean, but none is read; {hint}."
        )
    return StatusReading(tuple(notes), read, dropped)


def _by_status(counts: dict[str, int]) -> str:
    return ", ".join(f"{count:,} {status}" for status, count in sorted(counts.items()))


def _option_value(counts: dict[str, int]) -> str:
    """The statuses of ``counts`` as --purchase-statuses / --not-purchase-statuses take them."""
    return ",".join(sorted(counts))


def unpaid_note(column: str, counts: dict[str, int], read: bool = True) -> str:
    """The report's note on rows whose status (``counts`` by status) says the order was not
    paid when the shop exported it: they are read as purchases, and the note says how to
    drop them (with --status-col when the column is not ``read`` yet)."""
    listed = _option_value(counts)
    option = "" if read else f"--status-col '{column}' "
    return (
        f"{counted(sum(counts.values()), 'row')} with column '{column}' saying the order was "
        f"not paid yet ({_by_status(counts)}) were read as purchases: most are paid later, some "
        f"never are ({option}--not-purchase-statuses '{listed}' drops them)"
    )


def unread_statuses(name: str, column: str, counts: dict[str, int]) -> InputError:
    """The refusal of an input whose ``column`` marks orders as not purchases (``counts``
    of rows by status) when no --status-col says what to do with them."""
    return InputError(
        f"transactions ({name}): column '{column}' marks orders as not purchases "
        f"({_by_status(counts)} rows); pass --status-col '{column}' to drop and count them, or "
        f"--status-col {NO_COLUMN} to count every row as a purchase."
    )


def unknown_statuses(
    name: str, column: str, counts: dict[str, int], found_by_name: bool
) -> InputError:
    """The refusal of a status column holding statuses (``counts`` of rows by status) that
    say neither that an order is a purchase nor that it is not."""
    listed = _option_value(counts)
    why = "; ".join(f"'{s}': {_TWO_MEANINGS[s]}" for s in sorted(counts) if s in _TWO_MEANINGS)
    column_option = f"--status-col '{column}' with " if found_by_name else ""
    none = f", or --status-col {NO_COLUMN} to count every row as a purchase" * found_by_name
    return InputError(
        f"transactions ({name}): column '{column}' holds order statuses that do not say "
        f"whether the order is a purchase ({_by_status(counts)} rows{'; ' + why if why else ''}); "
        f"pass {column_option}--not-purchase-statuses '{listed}' to drop and count those "
        f"orders or --purchase-statuses '{listed}' to read them as purchases (or some in "
        f"each){none}."
    )
