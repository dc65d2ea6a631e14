using Microsoft.Extensions.Logging.Abstractions;
using Parley.Hub.Groups;
using Parley.Identity;

namespace Parley.Identity.Tests;

/// <summary>Groups: names, nesting, expansion, who manages them, and the audit of every change.</summary>
public sealed class GroupTests : IAsyncLifetime
{
    private IdentityFixture _f = null!;
    private Caller _owner = null!;
    private Caller _admin = null!;
    private Caller _lena = null!;
    private Caller _mia = null!;
    private Caller _bob = null!;
    private Caller _gina = null!;
    private readonly Dictionary<string, string> _tokens = [];

    public async Task InitializeAsync()
    {
        _f = await IdentityFixture.StartAsync(o =>
        {
            o.Registration = RegistrationPolicy.Open;
            o.LoginBurstPerAddress = 1000;
        });
        _owner = await UserAsync("owner1");
        _admin = await UserAsync("ada");
        await _f.Service.SetRoleAsync(_owner, "ada", HubRole.Admin);
        _admin = await _f.CallerAsync(_tokens["ada"]);
        _lena = await UserAsync("lena");
        _mia = await UserAsync("mia");
        _bob = await UserAsync("bob");
        _gina = await UserAsync("gina");
        await _f.Service.SetRoleAsync(_owner, "gina", HubRole.Guest);
        _gina = await _f.CallerAsync(_tokens["gina"]);
        Assert.Equal(HubRole.Guest, _gina.Role);
        foreach (var name in new[] { "carl", "dora", "eve", "zed" })
        {
            await _f.RegisterAsync(name);
        }
    }

    public async Task DisposeAsync() => await _f.DisposeAsync();

    private async Task<Caller> UserAsync(string name)
    {
        var (device, _) = await _f.RegisterAsync(name);
        _tokens[name] = (await _f.LoginAsync(name, device)).AccessToken;
        return await _f.CallerAsync(_tokens[name]);
    }

    private static async Task<string> RefusalAsync(Func<Task> action) => (await Assert.ThrowsAsync<IdentityException>(action)).Code;

    // @team (lena lead, mia) > @team/backend (mia, bob lead) > @team/backend/db (carl); @team/frontend (dora);
    // @team-x (zed) shares a prefix with @team but is not inside it; @other (eve).
    private async Task BuildTreeAsync()
    {
        foreach (var name in new[] { "team", "team/backend", "team/backend/db", "team/frontend", "team-x", "other" })
        {
            await _f.Service.CreateGroupAsync(_admin, name);
        }
        await _f.Service.AddGroupMemberAsync(_admin, "team", "lena", isLead: true);
        await _f.Service.AddGroupMemberAsync(_admin, "team", "mia", isLead: false);
        await _f.Service.AddGroupMemberAsync(_admin, "team/backend", "mia", isLead: false);
        await _f.Service.AddGroupMemberAsync(_admin, "team/backend", "bob", isLead: true);
        await _f.Service.AddGroupMemberAsync(_admin, "team/backend/db", "carl", isLead: false);
        await _f.Service.AddGroupMemberAsync(_admin, "team/frontend", "dora", isLead: false);
        await _f.Service.AddGroupMemberAsync(_admin, "team-x", "zed", isLead: false);
        await _f.Service.AddGroupMemberAsync(_admin, "other", "eve", isLead: false);
    }

    [Fact]
    public async Task Expansion_reaches_every_member_of_a_group_and_its_subgroups_exactly_once()
    {
        await BuildTreeAsync();

        Assert.Equal(["bob", "carl", "dora", "lena", "mia"], await _f.Service.ExpandGroupAsync("@team"));
        Assert.Equal(["bob", "carl", "mia"], await _f.Service.ExpandGroupAsync("team/backend"));
        Assert.Equal(["carl"], await _f.Service.ExpandGroupAsync("@team/backend/db"));
        Assert.Equal(["zed"], await _f.Service.ExpandGroupAsync("team-x"));
        Assert.Equal("group_not_found", await RefusalAsync(() => _f.Service.ExpandGroupAsync("@nobody")));
        Assert.Equal("invalid_group", await RefusalAsync(() => _f.Service.ExpandGroupAsync("Team")));

        // The seam the hub core uses answers the same from memory, and null for an unknown group.
        IGroupDirectory directory = _f.Service;
        Assert.Equal(["bob", "carl", "dora", "lena", "mia"], await directory.TryExpandAsync("@team"));
        Assert.Null(await directory.TryExpandAsync("nobody"));

        var details = await _f.Service.GetGroupAsync(_gina, "@team");
        Assert.Equal(["team/backend", "team/frontend"], details.Subgroups);
        Assert.Equal(["bob", "carl", "dora", "lena", "mia"], details.Expanded);
        Assert.Equal([new GroupMember("lena", true), new GroupMember("mia", false)], details.Group.Members);

        // mia leaves @team but is still reached through @team/backend; carl leaves and is gone.
        await _f.Service.RemoveGroupMemberAsync(_admin, "team", "mia");
        await _f.Service.RemoveGroupMemberAsync(_admin, "team/backend/db", "carl");
        Assert.Equal(["bob", "dora", "lena", "mia"], await _f.Service.ExpandGroupAsync("team"));

        // A service started over the same store sees the same groups.
        var restarted = await IdentityService.StartAsync(_f.Store, new IdentityOptions(), _f.Clock, NullLogger.Instance);
        Assert.Equal(["bob", "dora", "lena", "mia"], await restarted.ExpandGroupAsync("team"));
        Assert.Equal(6, (await restarted.ListGroupsAsync(_gina)).Count);
    }

    [Theory]
    [InlineData("a", true)]
    [InlineData("reviewers", true)]
    [InlineData("team/backend", true)]
    [InlineData("a/b/c/d", true)]
    [InlineData("x_y-1/0", true)]
    [InlineData("abcdefghijklmnopqrstuvwxyz012345", true)]
    [InlineData("abcdefghijklmnopqrstuvwxyz0123456", false)]
    [InlineData("a/b/c/d/e", false)]
    [InlineData("", false)]
    [InlineData("/", false)]
    [InlineData("a/", false)]
    [InlineData("/a", false)]
    [InlineData("a//b", false)]
    [InlineData("Team", false)]
    [InlineData("a b", false)]
    [InlineData("a.b", false)]
    [InlineData("@a", false)]
    public void Group_names_follow_the_rule(string name, bool valid) => Assert.Equal(valid, GroupNames.IsValid(name));

    [Fact]
    public async Task Names_are_taken_with_or_without_at_and_stored_without()
    {
        var created = await _f.Service.CreateGroupAsync(_admin, "@reviewers");
        Assert.Equal("reviewers", created.Name);
        Assert.Equal("reviewers", (await _f.Service.GetGroupAsync(_mia, "reviewers")).Group.Name);
        Assert.Equal("group_exists", await RefusalAsync(() => _f.Service.CreateGroupAsync(_admin, "reviewers")));
        Assert.Equal("invalid_group", await RefusalAsync(() => _f.Service.CreateGroupAsync(_admin, "Reviewers")));
        Assert.Equal("invalid_group", await RefusalAsync(() => _f.Service.CreateGroupAsync(_admin, "@@reviewers")));
        Assert.Equal("invalid_group", await RefusalAsync(() => _f.Service.CreateGroupAsync(_admin, "a/b/c/d/e")));
        Assert.Equal(["reviewers"], (await _f.Store.ListGroupsAsync()).Select(g => g.Name));
    }

    [Fact]
    public async Task A_subgroups_parent_must_exist()
    {
        Assert.Equal("group_not_found", await RefusalAsync(() => _f.Service.CreateGroupAsync(_admin, "team/backend")));
        await _f.Service.CreateGroupAsync(_admin, "team");
        await _f.Service.CreateGroupAsync(_admin, "team/backend");
        Assert.Equal("group_not_found", await RefusalAsync(() => _f.Service.CreateGroupAsync(_admin, "team/backend/db/x")));
        Assert.Equal(["team", "team/backend"], (await _f.Service.ListGroupsAsync(_mia)).Select(g => g.Name));
    }

    [Fact]
    public async Task Leads_manage_their_group_and_those_below_it_but_not_a_sibling_or_a_parent()
    {
        await BuildTreeAsync();

        // lena leads @team: she manages it and everything below it.
        await _f.Service.AddGroupMemberAsync(_lena, "team", "eve", isLead: false);
        await _f.Service.AddGroupMemberAsync(_lena, "team/backend/db", "zed", isLead: true);
        await _f.Service.RemoveGroupMemberAsync(_lena, "team/frontend", "dora");
        await _f.Service.CreateGroupAsync(_lena, "team/frontend/web");
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.AddGroupMemberAsync(_lena, "other", "mia", false)));
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.AddGroupMemberAsync(_lena, "team-x", "mia", false)));
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.CreateGroupAsync(_lena, "lenas")));
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.DeleteGroupAsync(_lena, "team/frontend/web")));

        // bob leads @team/backend: not its sibling @team/frontend, not its parent @team.
        await _f.Service.AddGroupMemberAsync(_bob, "team/backend", "dora", isLead: false);
        await _f.Service.CreateGroupAsync(_bob, "team/backend/api");
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.AddGroupMemberAsync(_bob, "team/frontend", "dora", false)));
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.RemoveGroupMemberAsync(_bob, "team", "mia")));
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.CreateGroupAsync(_bob, "team/ops")));

        // mia is a plain member of both: she manages nothing, but sees everything.
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.AddGroupMemberAsync(_mia, "team/backend", "eve", false)));
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.CreateGroupAsync(_mia, "team/backend/mine")));
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.CreateGroupAsync(_mia, "mine")));
        Assert.Equal(8, (await _f.Service.ListGroupsAsync(_mia)).Count);
        Assert.Contains("bob", (await _f.Service.GetGroupAsync(_gina, "team/backend")).Expanded);

        // Refusals change nothing.
        Assert.Equal(["bob", "dora", "mia"], (await _f.Service.GetGroupAsync(_gina, "team/backend")).Group.Members.Select(m => m.UserName));
    }

    [Fact]
    public async Task Admins_manage_every_group_and_api_keys_without_admin_scope_manage_none()
    {
        await BuildTreeAsync();
        await _f.Service.AddGroupMemberAsync(_owner, "other", "mia", isLead: true);
        await _f.Service.RemoveGroupMemberAsync(_admin, "team/backend/db", "carl");
        await _f.Service.CreateGroupAsync(_admin, "other/sub");
        await _f.Service.DeleteGroupAsync(_admin, "other/sub");

        // lena leads @team, but her keys are not logins: write or read scope, they manage nothing.
        var (_, writeSecret) = await _f.Service.CreateApiKeyAsync(_lena, "bot", ApiKeyScope.Write, null, null, null);
        var (_, readSecret) = await _f.Service.CreateApiKeyAsync(_lena, "reader", ApiKeyScope.Read, null, null, null);
        var writeKey = await _f.CallerAsync(writeSecret);
        var readKey = await _f.CallerAsync(readSecret);
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.AddGroupMemberAsync(writeKey, "team", "eve", false)));
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.CreateGroupAsync(writeKey, "team/bots")));
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.RemoveGroupMemberAsync(readKey, "team", "mia")));
        Assert.Equal(["bob", "dora", "lena", "mia"], await _f.Service.ExpandGroupAsync("team"));
        Assert.NotEmpty(await _f.Service.ListGroupsAsync(readKey));

        // The admin's own write key is no admin either; their admin-scoped key is.
        var (_, adminWrite) = await _f.Service.CreateApiKeyAsync(_admin, "adaw", ApiKeyScope.Write, null, null, null);
        var (_, adminScoped) = await _f.Service.CreateApiKeyAsync(_admin, "adak", ApiKeyScope.Admin, null, null, null);
        Assert.Equal("forbidden", await RefusalAsync(async () => await _f.Service.CreateGroupAsync(await _f.CallerAsync(adminWrite), "bots")));
        await _f.Service.CreateGroupAsync(await _f.CallerAsync(adminScoped), "bots");

        // A lead demoted to guest no longer manages.
        await _f.Service.SetRoleAsync(_admin, "lena", HubRole.Guest);
        var demoted = await _f.CallerAsync(_tokens["lena"]);
        Assert.Equal("forbidden", await RefusalAsync(() => _f.Service.AddGroupMemberAsync(demoted, "team", "eve", false)));
    }

    [Fact]
    public async Task Members_must_be_users_and_removing_a_non_member_is_not_found()
    {
        await _f.Service.CreateGroupAsync(_admin, "team");
        Assert.Equal("user_not_found", await RefusalAsync(() => _f.Service.AddGroupMemberAsync(_admin, "team", "ghost", false)));
        Assert.Equal("user_not_found", await RefusalAsync(() => _f.Service.AddGroupMemberAsync(_admin, "team", "key:initial-owner", false)));
        Assert.Equal("member_not_found", await RefusalAsync(() => _f.Service.RemoveGroupMemberAsync(_admin, "team", "mia")));
        Assert.Equal("group_not_found", await RefusalAsync(() => _f.Service.AddGroupMemberAsync(_admin, "nope", "mia", false)));

        // Adding again changes the lead flag, not the membership count.
        await _f.Service.AddGroupMemberAsync(_admin, "team", "mia", isLead: false);
        await _f.Service.AddGroupMemberAsync(_admin, "team", "mia", isLead: true);
        Assert.Equal([new GroupMember("mia", true)], (await _f.Service.GetGroupAsync(_mia, "team")).Group.Members);
    }

    [Fact]
    public async Task Deleting_a_group_with_subgroups_is_refused_and_deleting_one_removes_its_members()
    {
        await BuildTreeAsync();
        Assert.Equal("group_has_subgroups", await RefusalAsync(() => _f.Service.DeleteGroupAsync(_admin, "team")));
        Assert.Equal("group_has_subgroups", await RefusalAsync(() => _f.Service.DeleteGroupAsync(_admin, "@team/backend")));
        Assert.Equal(["bob", "carl", "dora", "lena", "mia"], await _f.Service.ExpandGroupAsync("team"));

        await _f.Service.DeleteGroupAsync(_admin, "team/backend/db");
        await _f.Service.DeleteGroupAsync(_admin, "team/backend");
        Assert.Equal(["dora", "lena", "mia"], await _f.Service.ExpandGroupAsync("team"));
        Assert.Equal("group_not_found", await RefusalAsync(() => _f.Service.ExpandGroupAsync("team/backend")));
        Assert.Equal("group_not_found", await RefusalAsync(() => _f.Service.DeleteGroupAsync(_admin, "team/backend")));

        // The name can be used again, and starts empty.
        await _f.Service.CreateGroupAsync(_admin, "team/backend");
        Assert.Empty(await _f.Service.ExpandGroupAsync("team/backend"));
    }

    [Fact]
    public async Task Every_change_writes_an_audit_entry()
    {
        var before = (await _f.Store.ReadAuditAsync(0, 1000)).Count;
        await _f.Service.CreateGroupAsync(_admin, "team");
        await _f.Service.AddGroupMemberAsync(_admin, "team", "lena", isLead: true);
        await _f.Service.CreateGroupAsync(_lena, "team/backend");
        await _f.Service.AddGroupMemberAsync(_lena, "team/backend", "bob", isLead: false);
        await _f.Service.RemoveGroupMemberAsync(_lena, "team/backend", "bob");
        await _f.Service.DeleteGroupAsync(_admin, "team/backend");
        await Assert.ThrowsAsync<IdentityException>(() => _f.Service.DeleteGroupAsync(_admin, "team/backend"));

        var entries = (await _f.Store.ReadAuditAsync(0, 1000)).Skip(before)
            .Select(e => (e.Event, e.Actor, e.Subject, e.Detail)).ToList();
        Assert.Equal(
            [
                ("group.created", "ada", "team", null),
                ("group.member_added", "ada", "team", "user=lena lead"),
                ("group.created", "lena", "team/backend", null),
                ("group.member_added", "lena", "team/backend", "user=bob"),
                ("group.member_removed", "lena", "team/backend", "user=bob"),
                ("group.deleted", "ada", "team/backend", "members=0"),
            ],
            entries);
    }
}
