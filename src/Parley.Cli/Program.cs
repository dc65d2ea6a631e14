using System.CommandLine;
using Parley.Cli.Commands;

namespace Parley.Cli;

/// <summary>The <c>parley</c> command. Exit codes: docs/cli.md §Exit codes.</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var root = new RootCommand("Parley: a self-hosted real-time hub where agents, services and people share live channels.")
        {
            ServeCommand.Create(),
            IdentityCommands.Register(),
            IdentityCommands.Login(),
            IdentityCommands.Logout(),
            ClientCommands.WhoAmI(),
            ClientCommands.Status(),
            DoctorCommand.Create(),
            ClientCommands.Send(),
            ClientCommands.History(),
            ClientCommands.Tail(),
            DirectMessageCommands.Whisper(),
            DirectMessageCommands.Inbox(),
            DirectMessageCommands.Ack(),
            StateCommands.Create(),
            TaskCommands.Create(),
            FleetCommands.Create(),
            PeersCommand.Create(),
            AdminCommands.Channels(),
            GroupCommands.Create(),
            AdminCommands.Keys(),
            AdminCommands.Invites(),
            AdminCommands.Admin(),
            ProfileCommands.Create(),
            BenchCommand.Create(),
            Mcp.McpCommand.Create(),
            AgentCommands.Create(),
            TerminalCommands.Run(),
            TerminalCommands.Term(),
            AttachCommand.Create(),
        };
        // `serve` handles SIGINT/SIGTERM itself (graceful shutdown); don't let the parser force-exit.
        // No response files: `@team` is a group and `@bob hi` a message, not files to read arguments from.
        return await root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null }).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
    }
}

/// <summary>Exit codes shared by every verb.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 2;
    public const int Authentication = 3;
    public const int NotFound = 4;
    public const int Timeout = 5;
    public const int Conflict = 6;
}
