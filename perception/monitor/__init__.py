"""Stream health: low light / low contrast from the image, drift and out-of-distribution scores from the features,
each as an OK / WARN / ERROR level with documented thresholds (tables in ``image_quality`` and ``feature_drift``)."""

from perception.monitor.config import MonitorConfig
from perception.monitor.feature_drift import FeatureDriftMonitor, FeatureScores
from perception.monitor.image_quality import ImageQuality, image_quality, luma
from perception.monitor.health import HealthSummary, stream_health
from perception.monitor.levels import ERROR, OK, WARN, level_above, level_below, worst
from perception.monitor.monitor import MonitorReport, StreamMonitor
from perception.monitor.reference import ReferenceStats

__all__ = [
    "ERROR", "OK", "WARN", "FeatureDriftMonitor", "FeatureScores", "HealthSummary", "ImageQuality", "MonitorConfig",
    "MonitorReport", "ReferenceStats", "StreamMonitor", "image_quality", "level_above", "level_below", "luma",
    "stream_health", "worst",
]
