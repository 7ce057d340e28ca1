"""The chaos suite: kills, fault mixes, rate storms, disk failures, the reliability scenarios."""
