# Stands in for the Portus models the bootstrap script and the migration's last step touch (User,
# Registry, a transaction), with their validations, and keeps their rows in a JSON file so that
# consecutive runs see each other's work. Usage: ruby fake_portus.rb STATE_FILE SCRIPT
require "json"

STATE_FILE = ARGV.fetch(0)
STATE = File.exist?(STATE_FILE) ? JSON.parse(File.read(STATE_FILE)) : { "users" => [], "registries" => [] }

module ActiveRecord
  class Base
    def self.transaction
      yield
      File.write(STATE_FILE, JSON.pretty_generate(STATE))
    end
  end
end

class Row
  def initialize(attributes)
    @attributes = attributes
  end

  def public_send(field, *args)
    @attributes.key?(field.to_s) ? @attributes[field.to_s] : super
  end

  def update!(changes)
    changes.each { |field, value| @attributes[field.to_s] = value }
    self.class.validate!(@attributes)
  end
end

class User < Row
  def self.find_by(username:)
    row = STATE["users"].find { |user| user["username"] == username }
    row && new(row)
  end

  def self.validate!(attributes)
    raise "username is invalid" unless attributes["username"] =~ /\A[a-z0-9]+(?:[._\-][a-z0-9]+)*\z/
    raise "email is invalid" unless attributes["email"].to_s.include?("@")
    raise "password is too short (minimum is 8 characters)" if attributes["password"].to_s.length < 8
  end

  def self.create!(username:, email:, password:, admin:)
    attributes = { "username" => username, "email" => email, "password" => password, "admin" => admin }
    validate!(attributes)
    raise "username has already been taken" if find_by(username: username)

    STATE["users"] << attributes
    new(attributes)
  end

  def self.exists?(username:)
    !find_by(username: username).nil?
  end

  # As Portus 2.4.3 defines it (app/models/user.rb); the password is Rails' secrets.portus_password.
  def self.create_portus_user!
    create!(username: "portus", password: ENV.fetch("PORTUS_PASSWORD"), email: "portus@portus.com", admin: true)
    File.write(STATE_FILE, JSON.pretty_generate(STATE))
  end

  def admin?
    @attributes["admin"]
  end

  def toggle_admin!
    @attributes["admin"] = !@attributes["admin"]
  end
end

class Registry < Row
  def self.first
    row = STATE["registries"].first
    row && new(row)
  end

  def self.validate!(attributes)
    %w[name hostname].each { |field| raise "#{field} can't be blank" if attributes[field].to_s.empty? }
    raise "use_ssl is not included in the list" unless [true, false].include?(attributes["use_ssl"])
  end

  def self.create!(attributes)
    attributes = attributes.transform_keys(&:to_s)
    validate!(attributes)
    raise "You can only create one registry" unless STATE["registries"].empty?

    STATE["registries"] << attributes
    new(attributes)
  end
end

load ARGV.fetch(1)
