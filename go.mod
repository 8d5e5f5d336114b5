module github.com/jetstreamproto/jsp

go 1.26

require (
	github.com/klauspost/compress v1.20.4
	github.com/spf13/cobra v1.10.2
	go.uber.org/goleak v1.3.0
)
