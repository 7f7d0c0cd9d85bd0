module github.com/pyro-dispatch/pyro-dispatch

go 1.26

require (
	github.com/google/uuid v1.6.0
	github.com/spf13/pflag v1.1.0
	go.uber.org/zap v1.28.0
	go.yaml.in/yaml/v3 v3.0.6
)

require (
	github.com/hashicorp/golang-lru/v2 v2.0.7 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
)
