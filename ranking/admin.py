from __future__ import annotations

from django.contrib import admin

from ranking.models import RankingProfile


@admin.register(RankingProfile)
class RankingProfileAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "is_active",
        "traffic_share",
        "weight_freshness",
        "weight_engagement",
        "weight_affinity",
        "updated_at",
    )
    list_filter = ("is_active",)
    search_fields = ("name",)
    fieldsets = (
        (None, {"fields": ("name", "is_active", "traffic_share")}),
        ("Weights", {"fields": ("weight_freshness", "weight_engagement", "weight_affinity")}),
        (
            "Components",
            {
                "fields": (
                    "freshness_half_life_hours",
                    "engagement_prior",
                    "affinity_window_days",
                    "affinity_half_life_days",
                    "affinity_floor",
                )
            },
        ),
        (
            "Candidates",
            {
                "fields": (
                    "in_network_window_hours",
                    "trending_window_hours",
                    "trending_pool",
                    "seen_window_days",
                    "cold_start_min_candidates",
                )
            },
        ),
        (
            "Diversity and feedback",
            {
                "fields": (
                    "out_of_network_factor",
                    "max_out_of_network_in_a_row",
                    "author_cap",
                    "author_cap_window",
                    "feed_length",
                    "hide_fatigue_factor",
                    "hide_fatigue_days",
                )
            },
        ),
    )
