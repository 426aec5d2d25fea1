"""Push robots: the group robots of WeCom (企业微信), DingTalk (钉钉) and Feishu/Lark (飞书), as
destinations of a chat's digests.

* ``models``: the services, a robot (service and token), a chat's push target, the limits;
* ``webhooks``: reading a pasted webhook URL (only the exact hosts and paths each service uses);
* ``client``: sending one message to a robot over HTTP, signed, its answer as a ``Delivery``;
* ``render``: a digest as a robot's markdown, split to the service's size limit;
* ``emulator``: local stand-ins for the three services, for tests, the shell and benchmarks.
"""
