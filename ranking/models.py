"""Ranking profiles: every number of the ranking, editable in the admin.

Active profiles split the users between them by a stable hash of the user id
(ranking.params.assign_profile) and their traffic share; users outside every
share get settings.RANKING_DEFAULT_PROFILE.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from ranking.params import RankingParams

_DEFAULTS = RankingParams()


def _positive(name: str) -> models.FloatField:
    return models.FloatField(default=getattr(_DEFAULTS, name), validators=[MinValueValidator(1e-9)])


def _count(name: str) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(default=getattr(_DEFAULTS, name), validators=[MinValueValidator(1)])


class RankingProfile(models.Model):
    name = models.SlugField(max_length=50, unique=True)
    is_active = models.BooleanField(default=False)
    traffic_share = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(100.0)],
        help_text="Percent of users ranked by this profile while active (active shares add up to at most 100).",
    )
    weight_freshness = models.FloatField(default=_DEFAULTS.weight_freshness, validators=[MinValueValidator(0.0)])
    weight_engagement = models.FloatField(default=_DEFAULTS.weight_engagement, validators=[MinValueValidator(0.0)])
    weight_affinity = models.FloatField(default=_DEFAULTS.weight_affinity, validators=[MinValueValidator(0.0)])
    freshness_half_life_hours = _positive("freshness_half_life_hours")
    engagement_prior = _positive("engagement_prior")
    affinity_window_days = _count("affinity_window_days")
    affinity_half_life_days = _positive("affinity_half_life_days")
    affinity_floor = _positive("affinity_floor")
    in_network_window_hours = _count("in_network_window_hours")
    trending_window_hours = _count("trending_window_hours")
    trending_pool = _count("trending_pool")
    seen_window_days = _count("seen_window_days")
    out_of_network_factor = models.FloatField(
        default=_DEFAULTS.out_of_network_factor, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    max_out_of_network_in_a_row = _count("max_out_of_network_in_a_row")
    author_cap = _count("author_cap")
    author_cap_window = _count("author_cap_window")
    feed_length = models.PositiveIntegerField(
        default=_DEFAULTS.feed_length, validators=[MinValueValidator(1), MaxValueValidator(500)]
    )
    hide_fatigue_factor = models.FloatField(
        default=_DEFAULTS.hide_fatigue_factor, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    hide_fatigue_days = _positive("hide_fatigue_days")
    cold_start_min_candidates = models.PositiveIntegerField(default=_DEFAULTS.cold_start_min_candidates)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "ranking_profiles"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def params(self) -> RankingParams:
        return RankingParams(name=self.name, **{f: getattr(self, f) for f in RankingParams.field_names()})

    def clean(self) -> None:
        try:
            self.params()
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if self.is_active:
            others = RankingProfile.objects.filter(is_active=True).exclude(pk=self.pk)
            total = sum(p.traffic_share for p in others) + self.traffic_share
            if total > 100.0 + 1e-9:
                raise ValidationError(f"active traffic shares would add up to {total:g} %, over 100 %")
