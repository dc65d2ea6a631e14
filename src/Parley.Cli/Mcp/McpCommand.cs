using System.CommandLine;
using Parley.Cli.Commands;
using Parley.Client;
using Parley.Protocol;

namespace Parley.Cli.Mcp;

/// <summary>
/// <c>parley mcp</c>: an MCP server over stdio for a coding agent (docs/agents.md). It connects to the hub
/// as the credential's user with client kind <c>agent</c>, serves the tools and resources, and pushes the
/// agent's items as channel notifications. Standard output carries MCP only; diagnostics go to stderr.
/// </summary>
internal static class McpCommand
{
    public static Command Create()
    {
        var command = new Command("mcp", "Run an MCP server over stdio for a coding agent: tools, resources, and pushed messages (docs/agents.md).");
        var allowFrom = new Option<string?>("--allow-from") { Description = "Push only messages from these users and @groups, e.g. alice,@team/backend (default: everyone on the hub). Others still wait in the inbox." };
        var join = new Option<string[]>("--join") { Description = "Join this channel (presence; @-mentions are pushed). Repeatable. Default: the channels of the last session, else lobby.", AllowMultipleArgumentsPerToken = false };
        var follow = new Option<string[]>("--follow") { Description = "Follow this channel: every message on it is pushed. Repeatable." };
        command.Options.Add(allowFrom);
        command.Options.Add(join);
        command.Options.Add(follow);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction(async (parse, ct) =>
        {
            try
            {
                var (server, credentials, _, _) = ClientCommands.Resolve(parse, common);
                if (credentials is null)
                {
                    await Console.Error.WriteLineAsync("parley mcp: no credential: pass --key-file (parley agent setup writes one), --token / PARLEY_TOKEN, --name / PARLEY_USER or --profile");
                    return ExitCodes.Authentication;
                }
                var client = new ParleyClient(new ParleyClientOptions { Server = server, Credentials = credentials, ClientKind = "agent" });
                await using var session = await AgentSession.StartAsync(client, server, credentials, (s, user) => AgentBook.Load(AgentBook.PathFor(s, user, parse.GetValue(common.KeyFile))),
                    parse.GetValue(allowFrom), [.. (parse.GetValue(join) ?? []).Select(ClientCommands.Topic)], [.. (parse.GetValue(follow) ?? []).Select(ClientCommands.Topic)], ct);
                await Console.Error.WriteLineAsync($"parley mcp: {session.Name} on {server} (client agent); pushing messages from {session.Policy.Describe()}");
                await AgentServer.RunAsync(session, ct);
                return ExitCodes.Ok;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return ExitCodes.Ok;
            }
            catch (IdentityCommands.UsageException ex)
            {
                await Console.Error.WriteLineAsync($"parley mcp: {SecretRedactor.Redact(ex.Message)}");
                return ExitCodes.Usage;
            }
            catch (Exception ex) when (ex is IdentityCommands.CliFailure or ParleyClientException or ToolException or IOException or UnauthorizedAccessException)
            {
                await Console.Error.WriteLineAsync($"parley mcp: {SecretRedactor.Redact(ex.Message)}");
                return ex is IdentityCommands.CliFailure f ? f.ExitCode : ExitCodes.Failure;
            }
        });
        return command;
    }
}
