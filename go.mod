module github.com/jetstreamproto/jsp

go 1.26
