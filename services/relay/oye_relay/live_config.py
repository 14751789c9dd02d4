"""The proxy configuration the owner sets through the API, applied live.

It lives in NATS KV (``oye_shared.state.ProxyConfig``). The relay seeds it from
``OYE_UPSTREAM_URL`` when it does not exist yet (so does the API: whoever comes first),
then follows every change: new charger connections and upstream reconnections use the
latest ``targetCsmsUrl`` and ``csmsForwardingEnabled``.
"""

from __future__ import annotations

import logging

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from oye_relay.keepalive import Keepalive
from oye_relay.upstream import UpstreamOptions, make_ssl_context
from oye_shared.backends import SecondaryBackend
from oye_shared.bus import cancellation_checkpoint
from oye_shared.settings import Settings
from oye_shared.state import CONFIG_KEY, ProxyConfig, seed_config

log = logging.getLogger(__name__)


class LiveConfig:
    def __init__(self, settings: Settings, keepalive: Keepalive) -> None:
        self.settings = settings
        self.keepalive = keepalive
        self.config = seed_config(settings)
        self._options: UpstreamOptions | None = None
        self._secondary_options: dict[str, UpstreamOptions] = {}

    def upstream_options(self) -> UpstreamOptions | None:
        """How to reach the CSMS now; None when standalone or forwarding is off."""
        url = self.config.target_csms_url
        if not url or not self.config.csms_forwarding_enabled:
            return None
        if self._options is None or self._options.base_url != url:
            self._options = self._options_for(url)
        return self._options

    def secondaries(self, charge_point_id: str) -> list[tuple[SecondaryBackend, UpstreamOptions]]:
        """The secondary backends of a charger connecting now, and how to reach each."""
        found = []
        for backend in self.config.secondary_backends:
            if backend.applies_to(charge_point_id):
                options = self._secondary_options.get(backend.url)
                if options is None:
                    options = self._secondary_options[backend.url] = self._options_for(backend.url)
                found.append((backend, options))
        return found

    def _options_for(self, url: str) -> UpstreamOptions:
        settings = self.settings
        return UpstreamOptions(
            base_url=url,
            ssl_context=make_ssl_context(
                url, verify=settings.upstream_tls_verify, ca_file=settings.upstream_ca_file
            ),
            open_timeout=settings.upstream_connect_timeout,
            keepalive=self.keepalive,
            max_size=settings.max_frame_bytes,
        )

    async def follow(self, kv: KeyValue) -> None:
        """Seed the configuration if missing, then apply every change until cancelled."""
        try:
            await kv.create(CONFIG_KEY, self.config.model_dump_json(by_alias=True).encode())
            log.info("configuration seeded from OYE_UPSTREAM_URL")
        except KeyWrongLastSequenceError:
            pass  # it exists: the stored configuration wins
        watcher = await kv.watch(CONFIG_KEY)
        try:
            async for entry in watcher:
                cancellation_checkpoint()
                if entry is None or entry.value is None:
                    continue
                try:
                    config = ProxyConfig.model_validate_json(entry.value)
                except ValidationError as exc:
                    log.error("ignoring an unreadable configuration in NATS KV: %s", exc)
                    continue
                if config != self.config:
                    log.info(
                        "configuration: CSMS %s, forwarding %s, secondary backends: %s",
                        config.target_csms_url or "none (standalone)",
                        "on" if config.csms_forwarding_enabled else "off",
                        ", ".join(b.name for b in config.secondary_backends) or "none",
                    )
                self.config = config
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
