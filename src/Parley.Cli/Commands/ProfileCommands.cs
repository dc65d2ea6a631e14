using System.CommandLine;
using System.Text.Json.Nodes;
using Parley.Identity;

namespace Parley.Cli.Commands;

/// <summary><c>parley profile add|use|list|remove</c>: named hubs, so verbs need no <c>--server</c>/<c>--name</c> (docs/cli.md).</summary>
internal static class ProfileCommands
{
    public static Command Create()
    {
        var profile = new Command("profile", "Named hubs (server URL and user) in the config dir; the current one is used when --server/--name are not given.");
        var name = new Argument<string>("profile") { Description = "The profile's name." };
        var server = new Option<string>("--server") { Description = "The hub's URL.", Required = true };
        var user = new Option<string?>("--name") { Description = "The user whose device key logs in." };
        var keyFile = new Option<string?>("--key-file") { Description = "Where that user's device key is (default: keys/USER.key in the config dir)." };
        var json = new Option<bool>("--json") { Description = "Print JSON." };

        var add = new Command("add", "Add or replace a profile and make it current.") { name, server, user, keyFile, json };
        add.SetAction((parse, _) => IdentityCommands.RunAsync("profile add", parse.GetValue(json), () =>
        {
            var profileName = parse.GetValue(name)!;
            if (!Names.IsValid(profileName))
            {
                throw new IdentityCommands.UsageException($"a profile name is {Names.Rule}");
            }
            var url = IdentityCommands.ServerUrl(parse.GetValue(server)).ToString().TrimEnd('/');
            var (_, all) = Profiles.Load();
            all.RemoveAll(p => p.Name == profileName);
            if (parse.GetValue(keyFile) is not null && parse.GetValue(user) is null)
            {
                throw new IdentityCommands.UsageException("--key-file needs --name: the key belongs to a user");
            }
            var keyPath = parse.GetValue(keyFile) is { } k ? Path.GetFullPath(k) : null;
            all.Add(new Profile(profileName, url, parse.GetValue(user), keyPath));
            Profiles.Save(profileName, all);
            return Task.FromResult((new JsonObject { ["current"] = profileName, ["server"] = url, ["user"] = parse.GetValue(user), ["key_file"] = keyPath }, $"profile {profileName} ({url}) added and in use"));
        }));

        var useName = new Argument<string>("profile") { Description = "The profile to use." };
        var use = new Command("use", "Make a profile current.") { useName, json };
        use.SetAction((parse, _) => IdentityCommands.RunAsync("profile use", parse.GetValue(json), () =>
        {
            var (_, all) = Profiles.Load();
            var chosen = all.Find(p => p.Name == parse.GetValue(useName))
                ?? throw new IdentityCommands.CliFailure($"no profile '{parse.GetValue(useName)}': see parley profile list", ExitCodes.NotFound);
            Profiles.Save(chosen.Name, all);
            return Task.FromResult((new JsonObject { ["current"] = chosen.Name }, $"using {chosen.Name} ({chosen.Server})"));
        }));

        var list = new Command("list", "List profiles; * marks the current one.") { json };
        list.SetAction((parse, _) => IdentityCommands.RunAsync("profile list", parse.GetValue(json), () =>
        {
            var (current, all) = Profiles.Load();
            var array = new JsonArray([.. all.Select(p => (JsonNode)new JsonObject { ["name"] = p.Name, ["server"] = p.Server, ["user"] = p.User, ["key_file"] = p.KeyFile, ["current"] = p.Name == current })]);
            var human = all.Count == 0 ? "(no profiles: parley profile add NAME --server URL --name USER)"
                : string.Join(Environment.NewLine, all.Select(p => $"{(p.Name == current ? "*" : " ")} {p.Name}  {p.Server}{(p.User is null ? "" : "  as " + p.User)}"));
            return Task.FromResult((new JsonObject { ["profiles"] = array }, human));
        }));

        var removeName = new Argument<string>("profile") { Description = "The profile to remove." };
        var remove = new Command("remove", "Remove a profile.") { removeName, json };
        remove.SetAction((parse, _) => IdentityCommands.RunAsync("profile remove", parse.GetValue(json), () =>
        {
            var (current, all) = Profiles.Load();
            if (all.RemoveAll(p => p.Name == parse.GetValue(removeName)) == 0)
            {
                throw new IdentityCommands.CliFailure($"no profile '{parse.GetValue(removeName)}'", ExitCodes.NotFound);
            }
            Profiles.Save(current == parse.GetValue(removeName) ? null : current, all);
            return Task.FromResult((new JsonObject { ["removed"] = parse.GetValue(removeName) }, "removed"));
        }));

        profile.Subcommands.Add(add);
        profile.Subcommands.Add(use);
        profile.Subcommands.Add(list);
        profile.Subcommands.Add(remove);
        return profile;
    }
}
