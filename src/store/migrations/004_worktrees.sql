-- Each agent's own git worktree and branch, and a failed setup command.
ALTER TABLE agents ADD COLUMN worktree TEXT;
ALTER TABLE agents ADD COLUMN branch TEXT;
ALTER TABLE agents ADD COLUMN setup_error TEXT;
