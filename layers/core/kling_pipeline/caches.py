"""Every object this process builds lazily and keeps (settings, clients, stores, providers), forgotten in
one call: the local stack and tests change the environment and endpoints between runs."""

from __future__ import annotations


def reset_caches() -> None:
    from kling_pipeline import aws, config
    from kling_pipeline.providers import registry
    from kling_pipeline.services import capacity, idempotency, webhooks
    from kling_pipeline.store import (
        budgets,
        deliveries,
        elements,
        generations,
        media,
        queue,
        receipts,
        request_keys,
        slots,
    )

    config.reset_settings()
    aws.reset_clients()
    registry.reset_providers()
    capacity.forget_process_state()
    for factory in (
        generations.get_generation_store,
        budgets.get_budget_store,
        elements.get_element_store,
        deliveries.get_delivery_store,
        media.get_media_store,
        receipts.get_callback_receipts,
        slots.get_slot_store,
        queue.get_queue_store,
        request_keys.get_request_keys,
        webhooks.http_client,
        idempotency.persistence_layer,
        idempotency.idempotency_config,
        idempotency.idempotent,
    ):
        factory.cache_clear()
