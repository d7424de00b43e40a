"""WeChat callback protocol: messages, crypto, reply XML, and WeChat's side for simulation."""

from bot.wechat.crypto import Codec, check_timestamp, signature
from bot.wechat.messages import Message, parse_message
from bot.wechat.replies import text_reply
from bot.wechat.simulator import Simulator, build_message_xml

__all__ = [
    "Codec",
    "Message",
    "Simulator",
    "build_message_xml",
    "check_timestamp",
    "parse_message",
    "signature",
    "text_reply",
]
