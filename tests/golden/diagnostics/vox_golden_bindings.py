"""Python bindings for the V6 pre-flight goldens (imported by pre-flight, never called)."""


def issue_refund(order_id, amount, note=""):
    return f"rf_{order_id}"


def send_sms(phone, text, *, sender):
    return "sent"
