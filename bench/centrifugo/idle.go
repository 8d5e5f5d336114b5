package main

func idleCentrifugo(args []string) error { return nil }
