package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nova-container-agent/nova-container-agent/agent/config"
)

// runAgent is a placeholder until the agent is wired in run.go; the team
// lead deletes this file then.
func runAgent(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	return errors.New("agent not wired yet")
}
