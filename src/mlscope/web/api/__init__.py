"""The dashboard's JSON API: one router per view, thin routes over plain service functions."""
